"""The README's main-job command: daemon + listener on a clip, ending cleanly at end of file."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _free_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


def test_demo_runs_daemon_and_listener_to_the_end(sample_video: Path, tiny_onnx_path: Path) -> None:
    env = {**os.environ, "SLOVO_MODEL": str(tiny_onnx_path), "SLR_EDGE_ENDPOINT": _free_endpoint()}
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "demo.sh"), str(sample_video)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "prediction #" in result.stdout, "the listener printed the daemon's predictions"
    assert "status" in result.stdout
    assert "класс_" in result.stdout, "Russian labels are rendered as text"
    assert "Traceback" not in result.stderr


def test_demo_with_a_missing_model_says_so(sample_video: Path, tmp_path: Path) -> None:
    env = {**os.environ, "SLOVO_MODEL": str(tmp_path / "nope.onnx")}
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "demo.sh"), str(sample_video)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def _session_processes(sid: int) -> list[str]:
    """Command lines of the processes still in session ``sid`` (the demo and what it started)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue  # ended while we looked
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(cmdline.strip())
    return found


def _wait_gone(sid: int, timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := _session_processes(sid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def _demo(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """The demo in its own session (as a terminal would run it: Ctrl-C goes to the whole group)."""
    return subprocess.Popen(
        ["bash", str(REPO_ROOT / "scripts" / "demo.sh"), *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_ctrl_c_exits_130_and_stops_daemon_and_listener(sample_video: Path, tiny_onnx_path: Path) -> None:
    env = {**os.environ, "SLOVO_MODEL": str(tiny_onnx_path), "SLR_EDGE_ENDPOINT": _free_endpoint()}
    proc = _demo(env, str(sample_video), "--loop")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + 240
        while not any("status" in line for line in lines) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
            time.sleep(0.2)
        assert any("status" in line for line in lines), "the listener printed nothing"
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    err = proc.stderr.read()  # type: ignore[union-attr]
    assert code == 130, err[-2000:]
    assert "Traceback" not in err
    assert _wait_gone(proc.pid) == [], "the daemon or the listener outlived the demo"


def _free_port_held() -> tuple[socket.socket, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock, f"tcp://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("failure", ["missing-video", "port-taken"])
def test_a_daemon_that_fails_takes_the_listener_with_it(
    failure: str, sample_video: Path, tiny_onnx_path: Path, tmp_path: Path
) -> None:
    held, endpoint = _free_port_held()
    with held:
        if failure == "missing-video":
            held.close()
        video = tmp_path / "nope.mp4" if failure == "missing-video" else sample_video
        env = {**os.environ, "SLOVO_MODEL": str(tiny_onnx_path), "SLR_EDGE_ENDPOINT": endpoint}
        proc = _demo(env, str(video))
        try:
            _out, err = proc.communicate(timeout=240)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        left = _wait_gone(proc.pid)
    assert proc.returncode == 2, err[-2000:]
    assert ("file not found" if failure == "missing-video" else "cannot bind") in err
    assert left == [], f"left running after the daemon failed: {left}"


def test_demo_never_prints_a_camera_password(tiny_onnx_path: Path) -> None:
    env = {**os.environ, "SLOVO_MODEL": str(tiny_onnx_path), "SLR_EDGE_ENDPOINT": _free_endpoint()}
    url = "rtsp://admin:hunter2@127.0.0.1:9/s?token=hunter2"
    proc = _demo(env, url, "--open-timeout", "0.5")
    try:
        out = ""
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        while "==> daemon" not in out and time.monotonic() < deadline:
            out += proc.stdout.readline()
        os.killpg(proc.pid, signal.SIGTERM)
        more, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "==> daemon: rtsp://***@127.0.0.1:9/s?token=***" in out
    assert "hunter2" not in out + more + err
    assert _wait_gone(proc.pid) == []


def _fake_venv(tmp_path: Path, cpu_index_works: bool) -> tuple[Path, Path]:
    """A venv whose python only logs its pip calls; the CPU index answers or not."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    calls = tmp_path / "calls.log"
    fail = "" if cpu_index_works else 'case "$*" in *--index-url*) exit 1;; esac\n'
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n{fail}exit 0\n')
    python.chmod(0o755)
    return venv, calls


@pytest.mark.parametrize("cpu_index_works", [True, False])
def test_bootstrap_takes_torch_from_the_cpu_index_first(tmp_path: Path, cpu_index_works: bool) -> None:
    venv, calls = _fake_venv(tmp_path, cpu_index_works)
    script = f'source {REPO_ROOT / "scripts" / "bootstrap.sh"} || exit 9; echo "opts=$-"'
    env = {**os.environ, "SLOVO_VENV": str(venv)}
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    torch_calls = [line for line in calls.read_text().splitlines() if "torch==2.13.0" in line]
    assert "--index-url https://download.pytorch.org/whl/cpu" in torch_calls[0]
    assert len(torch_calls) == (1 if cpu_index_works else 2), torch_calls
    if not cpu_index_works:
        assert "--index-url" not in torch_calls[1] and "unreachable" in done.stdout
    opts = done.stdout.strip().splitlines()[-1]
    assert "e" not in opts.removeprefix("opts="), "bootstrap.sh leaked `set -e` into the caller"


def test_bootstrap_failure_is_reported_to_the_caller(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("#!/bin/sh\nexit 3\n")
    (venv / "bin" / "python").chmod(0o755)
    script = f"source {REPO_ROOT / 'scripts' / 'bootstrap.sh'} || exit 9; exit 0"
    done = subprocess.run(
        ["bash", "-c", script], env={**os.environ, "SLOVO_VENV": str(venv)}, capture_output=True, timeout=60
    )
    assert done.returncode == 9


def test_bootstrap_installs_missing_extras_only(tmp_path: Path) -> None:
    """demo.sh (edge,web) and test.sh (all) share .venv without reinstalling it in turns."""
    venv, calls = _fake_venv(tmp_path, cpu_index_works=True)
    stamp = venv / ".slovo-edge-stamp"

    def bootstrap(extras: str) -> list[str]:
        before = calls.read_text().splitlines() if calls.exists() else []
        script = f"source {REPO_ROOT / 'scripts' / 'bootstrap.sh'} || exit 9"
        env = {**os.environ, "SLOVO_VENV": str(venv), "SLOVO_EXTRAS": extras}
        done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return calls.read_text().splitlines()[len(before) :] if calls.exists() else []

    assert any("-e" in call and "[edge,web]" in call for call in bootstrap("edge,web"))
    assert stamp.read_text().split()[1] == "edge,web"
    assert bootstrap("edge") == []  # a subset: nothing to do
    added = bootstrap("edge,web,train")
    assert any("torch==2.13.0" in call for call in added)
    assert stamp.read_text().split()[1] == "edge,web,train"
    assert bootstrap("web,edge") == []


def _published_env(mirror: str, tmp_path: Path) -> dict[str, str]:
    """The demo's environment with no SLOVO_MODEL: it looks for the published model (via ``mirror``)."""
    env = {k: v for k, v in os.environ.items() if k != "SLOVO_MODEL" and "proxy" not in k.lower()}
    env.update(
        SLOVO_MODEL_MIRROR=mirror,
        SLOVO_MODEL_CACHE=str(tmp_path / "cache"),
        SLOVO_WEB_PORT="0",
        SLR_EDGE_ENDPOINT=_free_endpoint(),
    )
    return env


def test_demo_uses_the_published_model(sample_video: Path, reference_dir: Path, tmp_path: Path) -> None:
    """Looped until the listener shows a name of the mapping (a loaded machine may drop early frames)."""
    from helpers_model_server import MAPPING, NAMES, ModelServer, Route

    with ModelServer() as server:
        server.routes["/m/model_weights.pth"] = Route(
            body=(reference_dir / "tiny_checkpoint.pt").read_bytes()
        )
        server.routes["/m/sign_language_model_mappings.json"] = Route(
            body=json.dumps(MAPPING, ensure_ascii=False).encode()
        )
        proc = _demo(_published_env(server.url("/m"), tmp_path), str(sample_video), "--loop")
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
        reader.start()
        try:
            deadline = time.monotonic() + 400
            while not any(n in line for line in lines for n in NAMES) and time.monotonic() < deadline:
                assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
                time.sleep(0.2)
            os.killpg(proc.pid, signal.SIGINT)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    err = proc.stderr.read()  # type: ignore[union-attr]
    out = "".join(lines)
    assert any(name in out for name in NAMES), out[-3000:]
    assert "==> model: the published slovo-500" in out
    assert "UNTRAINED" not in out + err and "Traceback" not in err
    assert code == 130, err[-2000:]
    assert _wait_gone(proc.pid) == []


def test_demo_says_in_one_line_why_it_falls_back(sample_video: Path, tmp_path: Path) -> None:
    from helpers_model_server import ModelServer

    with ModelServer() as server:  # knows no files: every request is a 404
        proc = _demo(_published_env(server.url("/m"), tmp_path), str(sample_video))
        try:
            out = ""
            deadline = time.monotonic() + 300
            assert proc.stdout is not None
            while "==> daemon" not in out and time.monotonic() < deadline and proc.poll() is None:
                out += proc.stdout.readline()
            os.killpg(proc.pid, signal.SIGTERM)
            more, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert "==> daemon" in out, err[-2000:]
    reasons = [line for line in err.splitlines() if line.startswith("slr-model: error:")]
    assert len(reasons) == 1 and "404" in reasons[0], err
    assert "falling back to an UNTRAINED model" in err and "slr-model fetch slovo-500" in err
    assert "Traceback" not in err + more
    assert _wait_gone(proc.pid) == []
