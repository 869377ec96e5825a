"""One focused test per hostile-input defect that the corpus in test_hostile.py cannot show by exit code
alone: file modes, frame rates, counts, crash attribution, signals, terminal safety, temp files."""

from __future__ import annotations

import errno
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from edge.contract.keypoint_file import save_keypoints
from edge.contract.layout import LEFT_HAND, NUM_LANDMARKS, NUM_MODEL_ROWS
from edge.keypoints.resample import MAX_RESAMPLED_FRAMES, measured_fps, resample_window
from edge.util.logs import error_line

BIN = Path(sys.executable).parent


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True, timeout=120)


@pytest.fixture(scope="module")
def truncated_videos(tmp_path_factory: pytest.TempPathFactory, sample_video: Path) -> dict[str, Path]:
    """A faststart mp4 and an mkv of the sample, each cut to 60 % of its bytes (headers intact)."""
    root = tmp_path_factory.mktemp("truncated")
    out = {}
    for name, extra in (("faststart.mp4", ["-movflags", "+faststart"]), ("whole.mkv", [])):
        whole = root / name
        _ffmpeg("-i", str(sample_video), "-c", "copy", *extra, str(whole))
        data = whole.read_bytes()
        cut = root / f"cut_{name}"
        cut.write_bytes(data[: int(len(data) * 0.6)])
        out[name] = whole
        out[f"cut_{name}"] = cut
    return out


# -- files -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("umask", "mode"), [(0o077, 0o600), (0o022, 0o644), (0o027, 0o640)])
def test_landmark_files_follow_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    """Face landmarks are biometric: a private umask keeps them private (no forced 0644)."""
    old = os.umask(umask)
    try:
        path = save_keypoints(
            tmp_path / "clip.npz", np.zeros((2, NUM_LANDMARKS, 3), np.float32), np.array([0.0, 0.1]), 10.0
        )
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode


@pytest.mark.parametrize("name", ["faststart.mp4", "whole.mkv"])
def test_truncated_video_is_reported_and_whole_one_is_not(
    truncated_videos: dict[str, Path], name: str
) -> None:
    from edge.camera.sources import open_source

    with open_source(truncated_videos[name], warn_truncated=False) as whole:
        frames = sum(1 for _ in whole)
        assert whole.truncation() is None
    with open_source(truncated_videos[f"cut_{name}"], warn_truncated=False) as cut:
        decoded = sum(1 for _ in cut)
        problem = cut.truncation()
    assert decoded < frames == cut.expected_frames
    assert problem is not None and f"decoded {decoded} of the {frames} frames" in problem


def test_extract_fails_a_truncated_video_and_retries_it_on_resume(
    truncated_videos: dict[str, Path], tmp_path: Path
) -> None:
    """Exit 1, the video named, no .npz, so the next run tries it again instead of skipping it."""
    video = truncated_videos["cut_faststart.mp4"]
    cmd = [str(BIN / "slr-extract"), str(video), "-o", str(tmp_path), "--workers", "1", "--no-progress"]
    for _ in range(2):  # the second run is the resume: still 1 to extract, not skipped
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert run.returncode == 1, run.stderr
        assert "0 already done (skipped), 1 to extract" in run.stderr
        assert "FAILED cut_faststart: video" in run.stderr and "incomplete" in run.stderr
        assert not list(tmp_path.glob("*.npz"))


def test_predict_warns_on_a_truncated_video_and_writes_no_carriage_returns(
    truncated_videos: dict[str, Path], tmp_path: Path
) -> None:
    """A log file (stderr not a terminal) gets no progress bar, and the short decode is a warning."""
    from tests.helpers_onnx import build_tiny_onnx

    model = build_tiny_onnx(tmp_path / "m.onnx")
    run = subprocess.run(
        [str(BIN / "slr-predict"), str(truncated_videos["cut_whole.mkv"]), "--model", str(model), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "slr-predict: warning: video" in run.stderr and "incomplete" in run.stderr
    assert "\r" not in run.stderr


# -- frame rates and counts ----------------------------------------------------------------------


def test_gif_delays_of_3_3_4_centiseconds_are_30_fps() -> None:
    ts = np.cumsum([0.0] + [0.03, 0.03, 0.04] * 40)
    assert measured_fps(ts) == pytest.approx(30.0, rel=1e-3)


class _CountingModel:
    labels = ("a", "b")
    window = 32
    fps = 30.0
    name = "counting"

    def predict(self, frames: np.ndarray, idx: np.ndarray) -> np.ndarray:
        assert frames.shape == (self.window, NUM_MODEL_ROWS, 3)
        return np.array([0.0, 1.0], np.float32)


def test_gif_windows_start_in_order() -> None:
    """Sliding windows over a 3/3/4 cs GIF: window_start never goes backwards."""
    from edge.recognition.classify import classify_window

    ts = np.cumsum([0.0] + [0.03, 0.03, 0.04] * 40)
    raw = np.random.default_rng(0).random((len(ts), NUM_LANDMARKS, 3)).astype(np.float32)
    starts = [
        classify_window(
            _CountingModel(), raw[end - 32 : end], ts[end - 32 : end], k=1, max_frames=32
        ).window_start
        for end in range(32, len(ts) + 1)
    ]
    assert np.all(np.diff(starts) > 0)


def test_frames_used_counts_captured_hand_frames_not_interpolated_ones() -> None:
    """10 fps input resampled to 30 fps: 6 captured frames with hands are 6, not ~18."""
    from edge.recognition.classify import classify_window

    ts = np.arange(20) / 10.0
    raw = np.random.default_rng(0).random((20, NUM_LANDMARKS, 3)).astype(np.float32)
    raw[:, LEFT_HAND] = np.nan
    raw[:, 522:543] = np.nan
    raw[10:16, LEFT_HAND] = 0.5
    result = classify_window(_CountingModel(), raw, ts, k=1)
    assert result.resampled
    assert result.hand_frames == 6


def test_resampling_a_clip_with_absurd_timestamps_is_refused() -> None:
    """A damaged file's timestamps spanning days must not allocate gigabytes (MemoryError)."""
    raw = np.zeros((3, NUM_LANDMARKS, 3), np.float32)
    with pytest.raises(ValueError, match="damaged timestamps"):
        resample_window(raw, np.array([0.0, 1.0, 86_400.0]), 30.0)
    assert MAX_RESAMPLED_FRAMES < 86_400 * 30


# -- models ---------------------------------------------------------------------------------------


def test_error_line_survives_empty_and_multiline_messages() -> None:
    assert error_line(RuntimeError("")) == "RuntimeError"
    assert error_line(RuntimeError("\n\n  second\nthird")) == "second"


def test_model_failing_with_an_empty_message_is_a_model_error(tmp_path: Path, monkeypatch) -> None:
    """An exception without a message from the test window is still ModelError (exit 2), not IndexError."""
    from edge.recognition import inference
    from tests.helpers_onnx import build_tiny_onnx

    path = build_tiny_onnx(tmp_path / "m.onnx")

    def silent_failure(self, frames, idx):
        raise RuntimeError()

    monkeypatch.setattr(inference.EdgeModel, "predict_batch", silent_failure)
    with pytest.raises(inference.ModelError, match="fails on a test window: RuntimeError"):
        inference.load_model(path)


# -- export ---------------------------------------------------------------------------------------


def test_export_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("torch")
    from export import exporter
    from export.sources import ExportError

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(exporter.onnx, "save", full)
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match="No space left on device"):
        exporter.export_checkpoint(None, out, random_init="edge", latency_runs=0)
    assert list(tmp_path.iterdir()) == []


def test_export_nan_checkpoint_is_refused(tmp_path: Path, tiny_checkpoint_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from export.exporter import export_checkpoint
    from export.sources import ExportError

    state = torch.load(tiny_checkpoint_path, map_location="cpu", weights_only=True)
    name = next(key for key, value in state.items() if value.is_floating_point())
    state[name] = state[name].clone().fill_(float("nan"))
    bad = tmp_path / "nan.pt"
    torch.save(state, bad)
    labels = tmp_path / "labels.json"
    labels.write_text("[" + ",".join(f'"c{i}"' for i in range(10)) + "]")
    with pytest.raises(ExportError, match="not finite"):
        export_checkpoint(bad, tmp_path / "m.onnx", labels=labels, latency_runs=0)
    assert not (tmp_path / "m.onnx").exists()


def test_export_sigterm_removes_its_temporary_directory(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    proc = subprocess.Popen(
        [str(BIN / "slr-export"), "--random-init", "edge", "-o", str(out), "--no-latency"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not list(tmp_path.glob(".m.onnx.*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "export ended before its temporary directory could be seen"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


# -- slr-extract workers --------------------------------------------------------------------------


def test_one_crashing_video_does_not_fail_the_others(tmp_path: Path) -> None:
    """A native crash breaks the whole pool; only the video that crashes it is charged."""
    from edge.dataset.jobs import Job
    from edge.dataset.worker import _run_pool
    from tests.helpers_crash import CRASHING_ID, crash_or_succeed

    jobs = [Job(name, tmp_path / f"{name}.mp4") for name in ("a", CRASHING_ID, "c", "d")]
    results = {r.id: r for r in _run_pool(jobs, tmp_path, 2, 1, task=crash_or_succeed)}
    assert set(results) == {"a", CRASHING_ID, "c", "d"}
    assert results[CRASHING_ID].error == "worker process crashed on this video"
    assert [results[name].error for name in ("a", "c", "d")] == [None, None, None]


# -- slr-listen -----------------------------------------------------------------------------------


def test_listen_shows_escape_sequences_as_text() -> None:
    from edge.commands.listen import render

    buffer = io.StringIO()
    payload = {
        "v": 1,
        "seq": 1,
        "label": "\x1b]0;owned\x07\x1b[2Jпривет\u202e",
        "prob": 0.9,
        "windows": 2,
        "window_start": 0.0,
        "window_end": 1.0,
    }
    render(Console(file=buffer, width=200, color_system=None), "sign", payload)
    shown = buffer.getvalue()
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert "\\x1b[2Jпривет\\u202e" in shown


def test_listen_status_shows_no_invented_buffer_size() -> None:
    from edge.commands.listen import render_status

    status = {
        "state": "running",
        "camera": "ok",
        "source": "cam",
        "capture_fps": 30.0,
        "extraction_fps": 11.0,
        "dropped_frames": 0,
        "inference_p50_ms": 5.0,
        "buffer_fill": 40,
        "idle": False,
        "errors": {"extraction": 0, "inference": 0, "frames": 0},
        "uptime_s": 5,
        "model": {"name": "m", "sha256": "0" * 64},
        "version": "x",
    }
    assert "buf 40 |" in render_status(status).plain
    assert "buf 40/64 |" in render_status({**status, "model": {**status["model"], "window": 64}}).plain


def test_listen_stops_on_ctrl_c_even_if_started_with_sigint_ignored(tmp_path: Path) -> None:
    """Started in the background of a script (SIGINT ignored), it still says it waits, and stops on SIGINT."""
    proc = subprocess.Popen(
        [str(BIN / "slr-listen"), "--endpoint", f"ipc://{tmp_path / 'nobody.ipc'}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        deadline = time.monotonic() + 60
        line = ""
        assert proc.stderr is not None
        while "waiting" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
        assert "waiting" in line
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == 130  # interrupted (README's rule)


# -- a network camera that turns into a decompression bomb ------------------------------------


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def test_mjpeg_camera_that_starts_sending_8192_squared_frames_keeps_memory_bounded(
    tmp_path: Path, sample_video: Path, tiny_onnx_path: Path
) -> None:
    """Normal frames first (the open sees a sane size), then 8192x8192 JPEGs (~1 MB each, 200 MB
    decoded): OpenCV hands each over scaled to the size the stream opened with, or the pixel cap
    skips it with a warning; either way the daemon keeps running and publishing, and its peak
    memory stays far from the 1.3 GB such a stream cost before the cap (547 MiB measured, ~100 MiB
    above a plain stream)."""
    import cv2
    from deploy_support import MjpegCamera, free_port, jpeg_frames, make_clip

    from edge.transport.subscriber import Subscriber

    bomb = cv2.imencode(".jpg", np.zeros((8192, 8192, 3), np.uint8))[1].tobytes()
    normal = jpeg_frames(make_clip(sample_video, tmp_path / "clip.mp4", frames=6))
    camera = MjpegCamera(normal + [bomb] * 6, fps=10)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    daemon = subprocess.Popen(
        [str(BIN / "slr-edge"), "run", "--model", str(tiny_onnx_path), "--source", camera.url,
         "--endpoint", endpoint, "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    statuses: list[dict] = []
    try:
        with Subscriber(endpoint, ("status",)) as subscriber:
            deadline = time.monotonic() + 120
            # Until the camera has sent every bomb of its loop at least twice while the daemon watched.
            while time.monotonic() < deadline and not (statuses and camera.served >= 3 * len(camera.frames)):
                received = subscriber.recv(1.0)
                if received is not None:
                    statuses.append(received[1])
            assert daemon.poll() is None, "the daemon died on the oversized frames"
            peak_mb = _peak_rss_mb(daemon.pid)
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=60)
    finally:
        camera.die()
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    print(f"\nFIGURE mjpeg 8192x8192 bomb: peak RSS {peak_mb:.0f} MiB, {camera.served} frames served")
    assert camera.served >= 3 * len(camera.frames), "the camera never got through its loop"
    assert statuses and statuses[-1]["camera"] == "ok"
    assert peak_mb < 900, f"peak RSS {peak_mb:.0f} MiB"
    assert daemon.returncode == 0
    assert "Traceback" not in stderr
