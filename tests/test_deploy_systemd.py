"""The systemd unit, installed by the install recipe and booted under a real systemd.

A Debian bookworm minbase root filesystem (systemd, dbus, python3, python3-venv: like Raspberry Pi
OS Lite, no GL libraries) gets slovo-edge through ``systemd/install.sh``, the same script the
README and the unit's header give users (offline: ``PIP_NO_INDEX``/``PIP_FIND_LINKS`` point pip at
a wheelhouse downloaded on the host). Then a config (a 24-frame clip, ``loop = true``, a model,
a free loopback port) and ``systemctl enable``; then ``systemd-nspawn -b`` boots it, and the test
checks what users rely on: READY, messages, the sandbox, the watchdog, a fast stop, a clean
journal, and that a config error ends in ``failed`` instead of a restart loop.

Needs root and mmdebstrap + systemd-container (scripts/test.sh installs them). The root
filesystem and the wheels are cached in /var/cache/slovo-edge-tests; a warm run takes ~3 min.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from deploy_support import BootedContainer, dir_size_mb, free_port, installed_rootfs, make_clip, run

from edge.transport.subscriber import Subscriber
from edge.util.journal import NATIVE_NOISE
from tests.helpers_schema import validate

pytestmark = pytest.mark.deploy

UNIT = "slovo-edge.service"
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "python3-venv")
#: WatchdogSec + RestartSec of the unit, plus 5 s to kill the frozen process and start the next.
WATCHDOG_RESTART_LIMIT_S = 10 + 2 + 5
DYNAMIC_UIDS = range(61184, 65520)  # systemd's DynamicUser= range


@pytest.fixture(scope="module")
def installed_root(
    tmp_path_factory: pytest.TempPathFactory, tiny_onnx_path: Path, sample_video: Path
) -> dict:
    """A bookworm root filesystem with slovo-edge installed by the recipe and configured; not booted."""
    work = tmp_path_factory.mktemp("nspawn")
    started = time.monotonic()
    # The model goes in as the README says: install.sh --model, through slr-model in the device's
    # torch-free venv (checksum and model contract checked), into /var/lib/slovo-edge/model.onnx.
    model = tiny_onnx_path.read_bytes()
    root, install_output = installed_rootfs(
        work / "root",
        PACKAGES,
        "--model",
        "/root/tiny.onnx",
        "--model-sha256",
        hashlib.sha256(model).hexdigest(),
        files={"root/tiny.onnx": model},
    )
    install_s = time.monotonic() - started
    state = root / "var" / "lib" / "slovo-edge"
    assert (state / "model.onnx").read_bytes() == model, install_output
    make_clip(sample_video, state / "clip.mp4", frames=24)
    (root / "var" / "tmp" / "sample.mp4").write_bytes(sample_video.read_bytes())
    port = free_port()
    (root / "etc" / "slovo-edge" / "config.toml").write_text(
        'source = "/var/lib/slovo-edge/clip.mp4"\n'
        "loop = true\n"
        'model = "/var/lib/slovo-edge/model.onnx"\n'
        f'endpoint = "tcp://127.0.0.1:{port}"\n'
        "stride = 8\n"
    )
    run(
        ["systemd-nspawn", "--quiet", "-D", root, "--register=no", "--keep-unit", "systemctl", "enable", UNIT]
    )
    venv_mb = dir_size_mb(root / "opt" / "slovo-edge" / "venv")
    print(f"\ninstall recipe: {install_s:.0f} s, venv {venv_mb:.0f} MiB")
    return {"root": root, "work": work, "port": port, "install_output": install_output, "venv_mb": venv_mb}


@pytest.fixture(scope="module")
def booted(installed_root: dict) -> BootedContainer:
    container = BootedContainer(installed_root["root"], installed_root["work"] / "nspawn.log")
    try:
        ready_s = container.wait_for(
            lambda: container.show(UNIT, "ActiveState") == "active", 60, f"{UNIT} to become active"
        )
        container.ready_s = ready_s  # type: ignore[attr-defined]
        print(f"\nboot to READY: {ready_s:.1f} s")
        yield container
    finally:
        container.close()


def main_pid(container: BootedContainer) -> int:
    return int(container.show(UNIT, "MainPID"))


def wait_active(container: BootedContainer, timeout: float = 60) -> float:
    return container.wait_for(lambda: container.show(UNIT, "ActiveState") == "active", timeout, "active")


def test_recipe_installs_a_lean_venv_without_gui_libraries(installed_root: dict) -> None:
    root: Path = installed_root["root"]
    site = next((root / "opt" / "slovo-edge" / "venv" / "lib").glob("python3.*/site-packages"))
    installed = {path.name.split("-")[0].lower() for path in site.glob("*.dist-info")}
    assert {"mediapipe", "onnxruntime", "numpy", "pyzmq", "slovo_edge"} <= installed
    assert not installed & {
        "jax",
        "jaxlib",
        "scipy",
        "ml_dtypes",
        "opt_einsum",
        "sentencepiece",
        "sounddevice",
    }
    assert "opencv_contrib_python" not in installed  # the GUI build, which needs libGL
    assert not list(root.glob("usr/lib/*/libGL.so*")), "the device has no GL libraries"
    assert (root / "opt" / "slovo-edge" / "docs" / "PROTOCOL.md").is_file()  # the unit's Documentation=
    print(f"device venv: {installed_root['venv_mb']:.0f} MiB")
    assert installed_root["venv_mb"] <= 500


def test_unit_becomes_active_within_60_s(booted: BootedContainer) -> None:
    assert booted.ready_s <= 60  # type: ignore[attr-defined]
    assert booted.show(UNIT, "Type") == "notify"
    assert booted.show(UNIT, "SubState") == "running"


def test_host_subscriber_receives_schema_valid_status_and_prediction(
    booted: BootedContainer, installed_root: dict
) -> None:
    subscriber = Subscriber(f"tcp://127.0.0.1:{installed_root['port']}")
    seen: dict[str, dict] = {}
    deadline = time.monotonic() + 90
    try:
        while len(seen) < 2 and time.monotonic() < deadline:
            message = subscriber.recv(5.0)
            if message is None:
                continue
            topic, payload = message
            validate(topic, payload)
            seen.setdefault(topic, payload)
    finally:
        subscriber.close()
    assert {"status", "prediction"} <= set(seen), f"received only {sorted(seen)}"
    assert seen["status"]["camera"] == "ok"
    assert seen["status"]["last_frame_age_s"] is not None
    assert seen["prediction"]["model"] == "model"


def test_status_text_is_mirrored_and_the_daemon_runs_as_a_dynamic_user(booted: BootedContainer) -> None:
    text = booted.show(UNIT, "StatusText")
    assert re.match(r"(running|idle), camera ok, [\d.]+ frames/s extracted", text), text
    status = booted.exec("cat", f"/proc/{main_pid(booted)}/status").stdout
    uids = {int(value) for value in re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()}
    assert len(uids) == 1 and uids.pop() in DYNAMIC_UIDS, status
    assert booted.show(UNIT, "DynamicUser") == "yes"


def test_sandbox_makes_usr_and_home_read_only(booted: BootedContainer) -> None:
    pid = main_pid(booted)
    status = booted.exec("cat", f"/proc/{pid}/status").stdout
    uid = re.search(r"^Uid:\s+(\d+)", status, re.M).group(1)
    gid = re.search(r"^Gid:\s+(\d+)", status, re.M).group(1)

    def try_write(path: str, as_daemon_user: bool = False) -> bool:
        # In the daemon's mount namespace. As root: a read-only mount stops even root.
        user = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"] if as_daemon_user else []
        command = ["nsenter", "-t", str(pid), "-m", *user, "sh", "-c", f"echo x > {path} && rm {path}"]
        return booted.exec(*command, check=False).returncode == 0

    assert try_write("/var/lib/slovo-edge/probe", as_daemon_user=True)  # control: its state directory
    assert not try_write("/usr/probe")
    assert not try_write("/home/probe")
    assert not try_write("/etc/slovo-edge/probe", as_daemon_user=True)  # its config is not its to change


def monotonic_property(container: BootedContainer, prop: str) -> float:
    """A systemd ``...TimestampMonotonic`` in seconds (the container shares the host's monotonic clock)."""
    return int(container.show(UNIT, prop)) / 1e6


def test_watchdog_restarts_a_frozen_daemon(booted: BootedContainer) -> None:
    wait_active(booted)
    frozen = main_pid(booted)
    frozen_at = time.monotonic()
    booted.exec("sh", "-c", f"kill -STOP {frozen}")  # minbase has no kill binary: the shell builtin
    booted.wait_for(
        lambda: main_pid(booted) not in (0, frozen), WATCHDOG_RESTART_LIMIT_S + 30, "a new process"
    )
    wait_active(booted)
    restarted = monotonic_property(booted, "ExecMainStartTimestampMonotonic") - frozen_at
    ready = monotonic_property(booted, "ActiveEnterTimestampMonotonic") - frozen_at
    timeline = booted.exec("journalctl", "--no-pager", "-o", "short-monotonic", "-u", UNIT).stdout
    print(f"\nwatchdog: frozen daemon replaced after {restarted:.1f} s, READY again after {ready:.1f} s")
    print("\n".join(line for line in timeline.splitlines()[-12:] if "slr-edge[" not in line))
    assert restarted <= WATCHDOG_RESTART_LIMIT_S
    assert int(booted.show(UNIT, "NRestarts")) >= 1
    assert "Watchdog timeout" in timeline


def test_systemctl_stop_takes_at_most_2_s(booted: BootedContainer) -> None:
    wait_active(booted)
    try:
        booted.systemctl("stop", UNIT)
        # systemd's own timestamps: from leaving "active" to "inactive", without nsenter's overhead.
        elapsed = monotonic_property(booted, "InactiveEnterTimestampMonotonic") - monotonic_property(
            booted, "ActiveExitTimestampMonotonic"
        )
        print(f"\nsystemctl stop: {elapsed:.2f} s")
        assert elapsed <= 2.0
        assert booted.show(UNIT, "Result") == "success"
    finally:
        booted.systemctl("start", UNIT, timeout=90)


def test_journal_has_no_traceback_no_native_noise_and_single_timestamps(booted: BootedContainer) -> None:
    wait_active(booted)
    time.sleep(2)  # a few frames with a person: MediaPipe's first-detection warning would be out by now
    raw = booted.exec("journalctl", "--no-pager", "-o", "json", "-u", UNIT).stdout
    entries = [json.loads(line) for line in raw.splitlines() if line.strip()]
    ours = [entry for entry in entries if entry.get("SYSLOG_IDENTIFIER") == "slr-edge"]
    messages = [str(entry.get("MESSAGE", "")) for entry in ours]
    assert any("ready: publishing on" in message for message in messages), messages[-20:]
    for message in messages:
        assert "Traceback" not in message
        assert not NATIVE_NOISE.match(message.encode()), message
        assert not re.match(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d", message), f"doubled timestamp: {message}"
    ready = next(entry for entry in ours if "ready: publishing on" in str(entry.get("MESSAGE")))
    assert ready.get("PRIORITY") == "6"  # our "<6>" prefix became the entry's priority (info)


def test_missing_model_ends_in_failed_without_a_restart_loop(
    booted: BootedContainer, installed_root: dict
) -> None:
    drop_in = installed_root["root"] / "etc" / "systemd" / "system" / f"{UNIT}.d" / "missing-model.conf"
    drop_in.parent.mkdir(parents=True, exist_ok=True)
    drop_in.write_text("[Service]\nEnvironment=SLR_EDGE_MODEL=/var/lib/slovo-edge/missing.onnx\n")
    try:
        booted.systemctl("daemon-reload")
        booted.systemctl("restart", "--no-block", UNIT)  # a manual restart resets NRestarts to 0
        booted.wait_for(lambda: booted.show(UNIT, "ActiveState") == "failed", 60, f"{UNIT} to fail")
        time.sleep(5)  # longer than RestartSec: a restart would have happened by now
        assert booted.show(UNIT, "ActiveState") == "failed"
        assert booted.show(UNIT, "ExecMainStatus") == "2"
        assert int(booted.show(UNIT, "NRestarts")) == 0
        invocation = booted.show(UNIT, "InvocationID")
        lines = booted.exec(
            "journalctl", "--no-pager", "-o", "cat", f"_SYSTEMD_INVOCATION_ID={invocation}"
        ).stdout
        assert "slr-edge: error:" in lines and "missing.onnx" in lines
        assert "Traceback" not in lines
    finally:
        drop_in.unlink()
        booted.systemctl("daemon-reload")
        booted.systemctl("reset-failed", UNIT, check=False)


def test_landmarks_of_the_lean_install_are_bit_identical_to_the_full_install(
    booted: BootedContainer, installed_root: dict, tmp_path: Path
) -> None:
    """Same clip, same code: the device venv (no jax/scipy/..., headless OpenCV) and the dev venv."""
    booted.exec(
        "/opt/slovo-edge/venv/bin/slr-extract", "/var/tmp/sample.mp4", "-o", "/var/tmp/lean",
        "--workers", "1", "--no-progress", timeout=300,
    )  # fmt: skip
    host_extract = Path(sys.executable).parent / "slr-extract"
    sample = installed_root["root"] / "var" / "tmp" / "sample.mp4"
    run([host_extract, sample, "-o", tmp_path, "--workers", "1", "--no-progress"], timeout=300)
    with (
        np.load(installed_root["root"] / "var" / "tmp" / "lean" / "sample.npz") as lean,
        np.load(tmp_path / "sample.npz") as full,
    ):
        assert lean["landmarks"].shape == full["landmarks"].shape == (112, 543, 3)
        assert lean["landmarks"].tobytes() == full["landmarks"].tobytes()
        assert np.array_equal(lean["timestamps"], full["timestamps"])
