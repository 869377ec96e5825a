"""End-to-end: ``slr-edge run`` as a real process, observed through ZeroMQ and sd_notify.

Each daemon run on the 112-frame sample takes ~10 s on 2 cores, so one module-scoped run is
shared by most assertions. Timeouts below are hang guards only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from edge.contract.layout import has_hands
from edge.transport.subscriber import Subscriber
from tests.helpers_schema import validate

REPO = Path(__file__).resolve().parents[1]
HANG_GUARD_S = 120.0


@pytest.fixture(scope="module")
def model_path(tiny_onnx_path: Path) -> Path:
    """The real export of ``tiny_checkpoint.pt`` (10 labels), as a device would get it."""
    return tiny_onnx_path


def free_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


def start_daemon(
    args: list[str], log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLR_EDGE_", "NOTIFY_SOCKET", "WATCHDOG_"))
    }
    full_env.update(env or {})
    full_env["PYTHONUNBUFFERED"] = "1"
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "edge.commands.edge_cli", "run", *args],
            cwd=REPO,
            env=full_env,
            stdout=log,
            stderr=log,
        )


def run_to_exit(args: list[str], tmp_path: Path, timeout: float = 60.0) -> tuple[int, str]:
    proc = start_daemon(args, tmp_path / "daemon.log")
    try:
        code = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return code, (tmp_path / "daemon.log").read_text(errors="replace")


@dataclass
class Run:
    code: int
    log: str
    messages: list[tuple[str, dict[str, Any]]]
    notify: list[str] = field(default_factory=list)

    def of(self, topic: str) -> list[dict[str, Any]]:
        return [payload for t, payload in self.messages if t == topic]


@pytest.fixture(scope="module")
def sample_run(model_path: Path, sample_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The daemon on the sample clip to EOF, with a reading subscriber, a stalled one and a notify socket."""
    tmp = tmp_path_factory.mktemp("daemon")
    endpoint = free_endpoint()
    notify_path = tmp / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(0.2)
    datagrams: list[str] = []
    done = threading.Event()

    def read_notify() -> None:  # like systemd: read promptly (a unix datagram queue holds only ~10)
        while not done.is_set():
            try:
                datagrams.append(notify.recv(4096).decode())
            except TimeoutError:
                continue

    notify_thread = threading.Thread(target=read_notify, daemon=True)
    notify_thread.start()

    reader = Subscriber(endpoint, rcvhwm=100_000)
    context = zmq.Context.instance()
    stalled = context.socket(zmq.SUB)  # connected, subscribed to everything, never reads
    stalled.setsockopt(zmq.RCVHWM, 1)
    stalled.setsockopt(zmq.LINGER, 0)
    stalled.setsockopt(zmq.SUBSCRIBE, b"")
    stalled.connect(endpoint)

    args = [
        "--model",
        str(model_path),
        "--source",
        str(sample_video),
        "--endpoint",
        endpoint,
        "--status-interval",
        "0.5",
        "--stride",
        "8",
    ]
    env = {"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "1000000"}
    proc = start_daemon(args, tmp / "daemon.log", env)
    messages: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + HANG_GUARD_S
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if (msg := reader.recv(timeout_s=0.2)) is not None:
                messages.append(msg)
        while (msg := reader.recv(timeout_s=0.5)) is not None:
            messages.append(msg)
    finally:
        if proc.poll() is None:
            proc.kill()
        code = proc.wait(timeout=10)
        reader.close()
        stalled.close()
        done.set()
        notify_thread.join(5)
        notify.close()
    return Run(code, (tmp / "daemon.log").read_text(errors="replace"), messages, datagrams)


def test_sample_run_exits_cleanly_at_eof(sample_run: Run) -> None:
    assert sample_run.code == 0, sample_run.log
    assert "Traceback" not in sample_run.log
    assert "end of input: 112 frames extracted" in sample_run.log


def test_messages_validate_against_schemas(sample_run: Run) -> None:
    assert sample_run.of("status") and sample_run.of("prediction")
    for topic, payload in sample_run.messages:
        validate(topic, payload)


def test_seq_has_no_gaps_for_a_subscriber_that_keeps_up(sample_run: Run) -> None:
    """The stalled subscriber (RCVHWM 1, never reads) neither blocks the daemon nor costs us messages."""
    for topic in ("prediction", "status", "sign"):
        seqs = [p["seq"] for p in sample_run.of(topic)]
        if seqs:  # "sign" depends on the model's outputs; the others always occur
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), topic
    predictions = sample_run.of("prediction")
    assert predictions[0]["seq"] == 0  # connected before the first prediction: nothing missed
    assert len(predictions) >= 10  # 14 stride points on 112 frames; windows may be skipped, not lost


def test_frames_used_matches_hand_frames_of_the_window(
    sample_run: Run, tiny_vectors: dict[str, np.ndarray]
) -> None:
    """``frames_used`` equals has_hands over the reference extraction of the same frames (30 fps clip)."""
    reference = has_hands(tiny_vectors["case0_raw"])
    predictions = sample_run.of("prediction")
    for p in predictions:
        first, last = round(p["window_start"] * 30), round(p["window_end"] * 30)
        assert p["resampled"] is False  # the file is read at 30 fps: no resampling needed
        assert last - first + 1 <= 128
        assert abs(p["frames_used"] - int(reference[first : last + 1].sum())) <= 1, p
    final = predictions[-1]
    assert round(final["window_end"] * 30) == 111 and final["window_start"] == 0.0
    assert final["frames_used"] == int(reference.sum()) == 96
    assert len(final["top_k"]) == 5
    assert all(a["prob"] >= b["prob"] for a, b in zip(final["top_k"], final["top_k"][1:], strict=False))


def test_status_reports_the_run(sample_run: Run, model_path: Path) -> None:
    from edge.util.files import file_sha256

    statuses = sample_run.of("status")
    assert {s["state"] for s in statuses} >= {"running"}
    assert statuses[-1]["state"] == "stopping" and statuses[-1]["camera"] == "eof"
    assert all(s["model"]["sha256"] == file_sha256(model_path) for s in statuses)
    assert max(s["extraction_fps"] for s in statuses) > 0
    assert max(s["buffer_fill"] for s in statuses) == 112
    assert statuses[-1]["dropped_frames"] == 0  # a file is paced, never dropped
    assert statuses[-1]["errors"] == {"extraction": 0, "inference": 0, "frames": 0}
    assert statuses[-1]["inference_p50_ms"] is not None


def test_every_prediction_and_sign_carries_a_plausible_latency(sample_run: Run) -> None:
    """capture of the newest frame → ZeroMQ: positive, at least the model's time, below the whole run."""
    predictions, signs = sample_run.of("prediction"), sample_run.of("sign")
    run_ms = (sample_run.messages[-1][1]["ts"] - sample_run.messages[0][1]["ts"]) * 1000.0
    for p in predictions:
        assert p["inference_ms"] <= p["latency_ms"] < run_ms, p
        # published after the capture it measures from: the envelope's ts is no earlier
        assert p["latency_ms"] > 0
    for sign in signs:
        assert 0 < sign["latency_ms"] < run_ms
    statuses = [s for s in sample_run.of("status") if s["latency_p50_ms"] is not None]
    assert statuses, "no status reported latency percentiles"
    final = sample_run.of("status")[-1]
    latencies = [p["latency_ms"] for p in predictions]
    assert final["latency_p50_ms"] == pytest.approx(np.percentile(latencies, 50), abs=0.01)
    assert final["latency_p95_ms"] == pytest.approx(np.percentile(latencies, 95), abs=0.01)
    assert final["latency_p50_ms"] <= final["latency_p95_ms"]
    assert "latency_ms(p50=" in sample_run.log


def test_systemd_notifications(sample_run: Run) -> None:
    lines = [line for datagram in sample_run.notify for line in datagram.splitlines()]
    assert "READY=1" in lines
    assert "WATCHDOG=1" in lines
    assert lines[-1] == "STOPPING=1" or "STOPPING=1" in lines
    assert lines.index("READY=1") < lines.index("STOPPING=1")
    assert any(line.startswith("STATUS=") for line in lines)


def test_missing_camera_keeps_running_then_sigterm(model_path: Path, tmp_path: Path) -> None:
    endpoint = free_endpoint()
    with Subscriber(endpoint, ["status"]) as sub:
        proc = start_daemon(
            ["--model", str(model_path), "--source", "/dev/video99", "--endpoint", endpoint],
            tmp_path / "daemon.log",
        )
        try:
            status = None
            deadline = time.monotonic() + HANG_GUARD_S
            while status is None and proc.poll() is None and time.monotonic() < deadline:
                msg = sub.recv(timeout_s=0.5)
                status = msg[1] if msg else None
            assert status is not None, (tmp_path / "daemon.log").read_text()
            validate("status", status)
            assert status["camera"] == "connecting"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    log = (tmp_path / "daemon.log").read_text()
    assert "/dev/video99" in log and "Traceback" not in log


def test_sigterm_while_inferring_exits_promptly(model_path: Path, sample_video: Path, tmp_path: Path) -> None:
    endpoint = free_endpoint()
    with Subscriber(endpoint, ["prediction"]) as sub:
        proc = start_daemon(
            [
                "--model",
                str(model_path),
                "--source",
                str(sample_video),
                "--endpoint",
                endpoint,
                "--loop",
                "--stride",
                "1",
            ],
            tmp_path / "daemon.log",
        )
        try:
            assert sub.recv(timeout_s=HANG_GUARD_S) is not None, (tmp_path / "daemon.log").read_text()
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
            elapsed = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
    assert code == 0
    # Reported, not asserted (a wall-clock bound flakes at load ~15; proc.wait's 30 s is the hang
    # guard). Measured: 0.14-0.16 s from SIGTERM to exit, 0.02 s after the summary, since the daemon
    # leaves with os._exit instead of waiting for the interpreter's teardown (was 0.3-0.6 s idle,
    # 2.8-5.5 s loaded, after the summary).
    print(f"FIGURE sigterm_while_inferring_exit {elapsed:.2f}")
    log = (tmp_path / "daemon.log").read_text()
    assert "stopping (SIGTERM)" in log and "summary:" in log


def one_error_line(log: str, expected: str) -> None:
    errors = [line for line in log.splitlines() if line.startswith("slr-edge: error:")]
    assert len(errors) == 1 and expected in errors[0], log
    assert "Traceback" not in log


def test_nonexistent_file_exits_2(model_path: Path, tmp_path: Path) -> None:
    code, log = run_to_exit(
        ["--model", str(model_path), "--source", str(tmp_path / "nope.mp4"), "--endpoint", free_endpoint()],
        tmp_path,
    )
    assert code == 2
    one_error_line(log, "file not found")


def test_corrupt_video_exits_2(model_path: Path, tmp_path: Path) -> None:
    video = tmp_path / "corrupt.mp4"
    video.write_bytes(np.random.default_rng(0).bytes(50_000))
    code, log = run_to_exit(
        ["--model", str(model_path), "--source", str(video), "--endpoint", free_endpoint()], tmp_path
    )
    assert code == 2
    one_error_line(log, "corrupt.mp4")


def test_truncated_model_exits_2(model_path: Path, sample_video: Path, tmp_path: Path) -> None:
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(model_path.read_bytes()[:1000])
    code, log = run_to_exit(
        ["--model", str(bad), "--source", str(sample_video), "--endpoint", free_endpoint()], tmp_path
    )
    assert code == 2
    one_error_line(log, "not a usable ONNX model")


def test_malformed_config_exits_2(model_path: Path, tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    config.write_text(f'model = "{model_path}"\nstride = [\n')
    code, log = run_to_exit(["--config", str(config)], tmp_path)
    assert code == 2
    one_error_line(log, "not valid TOML")


def test_non_loopback_endpoint_needs_opt_in(model_path: Path, tmp_path: Path) -> None:
    code, log = run_to_exit(["--model", str(model_path), "--endpoint", "tcp://0.0.0.0:5556"], tmp_path)
    assert code == 2
    one_error_line(log, "--allow-remote")


def test_endpoint_in_use_exits_2(model_path: Path, sample_video: Path, tmp_path: Path) -> None:
    endpoint = free_endpoint()
    squatter = zmq.Context.instance().socket(zmq.PUB)
    squatter.setsockopt(zmq.LINGER, 0)
    squatter.bind(endpoint)
    try:
        code, log = run_to_exit(
            ["--model", str(model_path), "--source", str(sample_video), "--endpoint", endpoint], tmp_path
        )
    finally:
        squatter.close()
    assert code == 2
    one_error_line(log, f"cannot bind {endpoint}")


def test_help_and_check_model(model_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "edge.commands.edge_cli", "run", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 0 and "SLR_EDGE_" in out.stdout and "examples:" in out.stdout
    ok = subprocess.run(
        [sys.executable, "-m", "edge.commands.edge_cli", "check-model", str(model_path), "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert ok.returncode == 0, ok.stderr
    assert '"window": 128' in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "edge.commands.edge_cli", "check-model", "/nonexistent.onnx"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "does not exist" in bad.stderr


def _slr_edge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.commands.edge_cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=HANG_GUARD_S,
    )


def test_check_model_times_each_local_provider_for_fp32_and_int8(model_path: Path, tmp_path: Path) -> None:
    import json

    import onnxruntime as ort

    from export.quantize import quantize_int8

    int8 = tmp_path / "tiny-int8.onnx"
    assert quantize_int8(model_path, int8) > 0
    out = _slr_edge("check-model", str(model_path), "--int8", str(int8), "--runs", "5", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["latency"]
    local = [p for p in ort.get_available_providers() if p != "AzureExecutionProvider"]
    assert [(r["provider"], r["precision"]) for r in rows] == [
        (p, q) for p in local for q in ("fp32", "int8")
    ]
    for row in rows:
        if row["provider"] == "CPUExecutionProvider":
            assert row["error"] is None and 0 < row["p50_ms"] <= row["p95_ms"], row
    assert rows[1]["path"] == str(int8)
    text = _slr_edge("check-model", str(model_path), "--int8", str(int8), "--runs", "3")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert any(line.split()[:2] == ["fp32", "CPUExecutionProvider"] and "p50" in line for line in lines)
    assert any(line.split()[:2] == ["int8", "CPUExecutionProvider"] and "p95" in line for line in lines)
    assert lines[-1] == "OK: the daemon can run this model"


def test_check_model_refuses_an_int8_file_of_another_model(model_path: Path, tmp_path: Path) -> None:
    from helpers_onnx import build_tiny_onnx

    other = build_tiny_onnx(tmp_path / "other.onnx")
    out = _slr_edge("check-model", str(model_path), "--int8", str(other), "--runs", "1")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "same checkpoint" in out.stderr
    bad = _slr_edge("check-model", str(model_path), "--runs", "-1")
    assert bad.returncode == 2 and "--runs: must be >= 0" in bad.stderr


def test_unknown_execution_provider_exits_2_naming_the_available_ones(model_path: Path) -> None:
    import onnxruntime as ort

    out = _slr_edge(
        "run", "--model", str(model_path), "--source", "x.mp4", "--execution-providers", "CUDA,CPU"
    )
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "'CUDA' is not available" in out.stderr
    assert all(name in out.stderr for name in ort.get_available_providers())


# -- in process: the pipeline's logic with scripted sources and extractor (no MediaPipe) -----------


class RecordingPublisher:
    endpoint = "inproc://test"

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.closed = False

    def send(self, message: Any) -> bool:
        self.sent.append(message)
        return True

    def close(self) -> None:
        self.closed = True

    def of(self, topic: str) -> list[Any]:
        return [m for m in self.sent if topic == m.TOPIC]


class ScriptedSource:
    """A 30 fps "file" of ``n`` blank frames, each read ``age_s`` seconds before it is returned."""

    is_live, fps, name = False, 30.0, "scripted.mp4"

    def __init__(self, n: int, age_s: float = 0.0) -> None:
        self.n, self.i, self.age_s = n, 0, age_s

    def read(self) -> Any:
        from edge.camera.frame import Frame

        if self.i == self.n:
            return None
        self.i += 1
        captured_at = time.time() - self.age_s
        return Frame(np.zeros((8, 8, 3), np.uint8), (self.i - 1) / 30.0, self.i - 1, captured_at)

    def close(self) -> None:
        pass


class ScriptedExtractor:
    """Hands in the first ``hands_until`` frames; frame ``fail_at`` raises."""

    def __init__(self, hands_until: int, fail_at: int = -1) -> None:
        self.count, self.hands_until, self.fail_at = 0, hands_until, fail_at
        self.closed = False

    def extract(self, rgb: np.ndarray) -> np.ndarray:
        from edge.contract.layout import RIGHT_HAND, empty_frame

        i, self.count = self.count, self.count + 1
        if i == self.fail_at:
            raise RuntimeError("scripted extraction failure")
        kp = empty_frame()
        kp[:468] = 0.5
        if i < self.hands_until:
            kp[RIGHT_HAND] = 0.1 + i / 1000
        return kp

    def reset(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_pipeline_stops_inferring_when_idle_and_survives_errors(model_path: Path) -> None:
    from edge.daemon.config import DaemonConfig
    from edge.daemon.daemon import Daemon
    from edge.recognition.inference import load_model

    # idle_fps 0: every frame is extracted while idle too (the duty cycle has tests of its own)
    config = DaemonConfig(
        model=str(model_path), source="scripted.mp4", stride=8, idle_after_s=1.0, idle_fps=0.0
    )
    publisher = RecordingPublisher()
    extractor = ScriptedExtractor(hands_until=40, fail_at=100)
    daemon = Daemon(config, load_model(model_path), extractor, publisher, ScriptedSource(200))  # type: ignore[arg-type]
    done: list[int] = []
    thread = threading.Thread(target=lambda: done.append(daemon.run()))
    thread.start()
    thread.join(HANG_GUARD_S)
    assert done == [0]
    # Stride points 8..64 see hands and are not idle (hands last seen at 39/30 s, idle after 1 s);
    # from frame 72 on the scene is idle: no more inference.
    assert daemon.worker.completed + daemon.worker.skipped == 8
    predictions = publisher.of("prediction")
    assert len(predictions) == daemon.worker.completed
    assert all(round(p.window_end * 30) < 72 for p in predictions)
    assert predictions[-1].frames_used == 40  # window 0..63 holds the 40 hand frames
    assert daemon.extracted == 199 and daemon.extraction_errors == 1  # frame 100 failed, run went on
    final = publisher.of("status")[-1]
    assert final.idle is True and final.state == "stopping" and final.errors.extraction == 1
    assert extractor.closed and publisher.closed


def test_latency_runs_from_the_frames_capture_time(model_path: Path) -> None:
    """The capture timestamp travels with the frame: frames read 1 s "ago" report >= 1000 ms."""
    from edge.daemon.config import DaemonConfig
    from edge.daemon.daemon import Daemon
    from edge.recognition.inference import load_model

    config = DaemonConfig(
        model=str(model_path), source="scripted.mp4", stride=8, threshold=0.01, consecutive=1
    )
    publisher = RecordingPublisher()
    started = time.time()
    daemon = Daemon(config, load_model(model_path), ScriptedExtractor(40), publisher, ScriptedSource(40, 1.0))  # type: ignore[arg-type]
    assert daemon.run() == 0
    elapsed_ms = (time.time() - started) * 1000.0
    predictions, signs = publisher.of("prediction"), publisher.of("sign")
    assert predictions and signs  # threshold 0.01, one window: every window is a sign
    for message in [*predictions, *signs]:
        assert 1000.0 <= message.latency_ms < 1000.0 + elapsed_ms, message
    for p in predictions:
        assert p.latency_ms >= p.inference_ms
    final = publisher.of("status")[-1]
    assert final.latency_p50_ms is not None and final.latency_p95_ms is not None
    assert 1000.0 <= final.latency_p50_ms <= final.latency_p95_ms
    validate("status", {**final.to_payload(), "v": 1, "seq": 0, "ts": 0.0, "topic": "status"})


def test_inference_worker_replaces_pending_window_and_counts_errors(model_path: Path) -> None:
    from edge.daemon.config import DaemonConfig
    from edge.recognition.inference import load_model
    from edge.recognition.inference_worker import InferenceWorker, WindowJob

    real = load_model(model_path)
    gate = threading.Event()

    class SlowModel:
        labels, window, fps, name = real.labels, real.window, real.fps, real.name

        def predict(self, frames: np.ndarray, idx: np.ndarray) -> np.ndarray:
            gate.wait(HANG_GUARD_S)
            if frames[0, 61, 0] > 0.95:  # scripted failure for one window
                raise RuntimeError("scripted inference failure")
            return real.predict(frames, idx)

    def job(end: float, value: float = 0.3) -> WindowJob:
        from edge.contract.layout import RIGHT_HAND, empty_frame

        raw = np.stack([empty_frame() for _ in range(10)])
        raw[:, RIGHT_HAND] = value
        return WindowJob(raw, np.linspace(end - 9 / 30, end, 10), time.time())

    publisher = RecordingPublisher()
    worker = InferenceWorker(SlowModel(), publisher, DaemonConfig(model="m"))  # type: ignore[arg-type]
    worker.start()
    worker.submit(job(1.0))
    deadline = time.monotonic() + HANG_GUARD_S
    while not worker._busy and time.monotonic() < deadline:  # wait until job 1 is running
        time.sleep(0.01)
    worker.submit(job(2.0))
    worker.submit(job(3.0))  # replaces job 2 while job 1 is still running
    gate.set()
    assert worker.drain(HANG_GUARD_S)
    worker.submit(job(4.0, value=0.01))  # mirrored x = 0.99: the scripted failure
    assert worker.drain(HANG_GUARD_S)
    worker.stop()
    worker.join(HANG_GUARD_S)
    assert [p.window_end for p in publisher.of("prediction")] == [1.0, 3.0]
    assert (worker.skipped, worker.completed, worker.errors) == (1, 2, 1)


@pytest.mark.parametrize("step", [1, 3], ids=["30fps", "10fps-resampled"])
def test_daemon_and_slr_predict_give_identical_top_k(
    model_path: Path, tiny_vectors: dict[str, np.ndarray], step: int
) -> None:
    """One clip's keypoints through the daemon (one final window) and through slr-predict's path."""
    from edge.camera.frame import Frame
    from edge.daemon.config import DaemonConfig
    from edge.daemon.daemon import Daemon
    from edge.recognition.classify import classify_clip
    from edge.recognition.inference import load_model

    raw = tiny_vectors["case0_raw"][::step]
    ts = np.arange(len(raw)) * step / 30.0

    class ReplaySource:
        is_live, fps, name = False, 30.0 / step, "replay.mp4"

        def __init__(self) -> None:
            self.i = 0

        def read(self) -> Any:
            if self.i == len(raw):
                return None
            self.i += 1
            return Frame(np.zeros((8, 8, 3), np.uint8), float(ts[self.i - 1]), self.i - 1)

        def close(self) -> None:
            pass

    class ReplayExtractor:
        def __init__(self) -> None:
            self.i = 0

        def extract(self, rgb: np.ndarray) -> np.ndarray:
            self.i += 1
            return raw[self.i - 1]

        def reset(self) -> None:
            pass

        def close(self) -> None:
            pass

    model = load_model(model_path)
    # A stride longer than the clip: the only window is the one flushed at the end of the file.
    config = DaemonConfig(model=str(model_path), source="replay.mp4", stride=10_000, idle_after_s=60.0)
    publisher = RecordingPublisher()
    daemon = Daemon(config, model, ReplayExtractor(), publisher, ReplaySource())  # type: ignore[arg-type]
    assert daemon.run() == 0
    (prediction,) = publisher.of("prediction")
    clip = classify_clip(model, raw, ts, k=config.top_k, source="replay.mp4")
    assert list(prediction.top_k) == clip.top_k
    assert prediction.resampled == clip.resampled == (step == 3)


def test_sample_clip_gives_one_segment_equal_to_slr_predict(
    sample_run: Run, sample_predict_json: dict[str, Any]
) -> None:
    """The clip as a file: exactly one episode, classified exactly as ``slr-predict --json`` does."""
    from conftest import assert_same_top_k

    (segment,) = sample_run.of("segment")
    assert_same_top_k(segment["top_k"], sample_predict_json["top_k"])
    assert segment["hand_frames"] == sample_predict_json["hand_frames"] == 96
    assert (round(segment["start"] * 30), round(segment["end"] * 30)) == (0, 95)
    assert segment["frames"] == 96 and segment["cut"] is False and segment["resampled"] is False
    assert segment["latency_ms"] >= 0
    assert sample_run.of("status")[-1]["short_segments"] == 0
