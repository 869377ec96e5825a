"""slr-health (the container's HEALTHCHECK) follows the daemon's progress, not just its status messages.

A real daemon reads a live MJPEG camera on 127.0.0.1 (tests/deploy_support.MjpegCamera): while
frames flow the check passes; when the camera freezes (connection open, nothing sent) status keeps
coming with camera "ok" (what the old status-only check accepted), but no frame is extracted and
the check fails; when the camera dies it fails with the camera's state.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deploy_support import MjpegCamera, free_port, jpeg_frames, make_clip
from helpers_wire import Looper, RoguePublisher, frames_of, status_message

from edge.commands.health import connect_endpoint, verdict
from edge.transport.subscriber import Subscriber

GOOD = {"camera": "ok", "state": "running", "last_frame_age_s": 0.2}
#: --max-frame-age for the live test: far above a frame's extraction time here, and reached well
#: before OpenCV gives up on a silent stream (30 s) and reports the camera lost.
MAX_AGE_S = 10


def test_verdict() -> None:
    assert verdict(GOOD, 20) is None
    assert verdict({**GOOD, "last_frame_age_s": 25.0}, 20) == "no frame extracted for 25 s (limit 20 s)"
    assert verdict({**GOOD, "camera": "lost"}, 20) == "camera lost"
    assert verdict({**GOOD, "camera": "connecting"}, 20) == "camera connecting"
    assert verdict({**GOOD, "state": "stopping"}, 20) == "daemon stopping"
    assert verdict({**GOOD, "last_frame_age_s": None}, 20) == "no frame extracted yet"
    assert verdict({"camera": "ok", "state": "running"}, 20) == "daemon too old to report progress"


@pytest.mark.parametrize("age", [float("nan"), float("inf"), -1.0, "x", True, [1]])
def test_verdict_never_calls_an_invalid_frame_age_healthy(age: object) -> None:
    # NaN compares false with everything, so "age > limit" once let a NaN age pass.
    assert verdict({**GOOD, "last_frame_age_s": age}, 20).startswith("status reports an invalid")  # type: ignore[union-attr]


@pytest.mark.parametrize("limit", [float("nan"), float("inf"), -5.0, 0.0])
def test_verdict_with_an_invalid_limit_is_unhealthy(limit: float) -> None:
    assert verdict({**GOOD, "last_frame_age_s": 1000.0}, limit) is not None


@pytest.mark.parametrize(
    "flags",
    [
        ["--timeout", "nan"],
        ["--timeout", "inf"],
        ["--timeout", "-1"],
        ["--timeout", "0"],
        ["--timeout", "soon"],
        ["--max-frame-age", "nan"],
        ["--max-frame-age", "-5"],
        ["--max-frame-age", "inf"],
        ["--max-frame-age", "1e400"],
    ],
)
def test_bad_numbers_are_usage_errors(flags: list[str]) -> None:
    command = [sys.executable, "-m", "edge.commands.health", "--endpoint", "tcp://127.0.0.1:9", *flags]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"error: argument {flags[0]}" in result.stderr and "Traceback" not in result.stderr


def _health_against(messages: list[list[bytes]], *flags: str) -> subprocess.CompletedProcess[str]:
    with RoguePublisher() as rogue, Looper(rogue, messages):
        command = [sys.executable, "-m", "edge.commands.health", "--endpoint", rogue.endpoint, *flags]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_a_stale_status_with_a_nan_age_is_dropped_not_healthy() -> None:
    """A daemon whose last frame is 1000 s old sends NaN: the message is invalid JSON for v1, dropped."""
    nan_age = [b"status", json.dumps(status_message(age=1000.0)).replace("1000.0", "NaN").encode()]
    result = _health_against([nan_age], "--timeout", "2")
    assert result.returncode == 1, result.stdout
    assert (
        "unhealthy: no valid status" in result.stdout and "invalid message(s) dropped: json" in result.stdout
    )
    stale = _health_against([frames_of("status", status_message(age=1000.0))], "--timeout", "10")
    assert stale.returncode == 1 and "no frame extracted for 1000 s" in stale.stdout


def test_invalid_statuses_are_skipped_until_a_valid_one() -> None:
    hostile = [
        frames_of("status", {**status_message(), "v": []}),
        frames_of("status", {**status_message(), "last_frame_age_s": "x"}),
        frames_of("status", {**status_message(), "camera": None}),
        [b"status", b"[" * 100_000],
        [b"status", b"\xff"],
    ]
    result = _health_against([*hostile, frames_of("status", status_message(age=0.5))], "--timeout", "30")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "healthy: last frame 0.5 s ago" in result.stdout and "Traceback" not in result.stderr
    only_hostile = _health_against(hostile, "--timeout", "2")
    assert only_hostile.returncode == 1 and "invalid message(s) dropped" in only_hostile.stdout


def test_connect_endpoint_reads_wildcards_as_loopback() -> None:
    assert connect_endpoint("tcp://0.0.0.0:5556") == "tcp://127.0.0.1:5556"
    assert connect_endpoint("tcp://*:7000") == "tcp://127.0.0.1:7000"
    assert connect_endpoint("tcp://127.0.0.1:5556") == "tcp://127.0.0.1:5556"
    assert connect_endpoint("ipc:///run/slovo.sock") == "ipc:///run/slovo.sock"


def health(endpoint: str, max_age: float) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "edge.commands.health", "--endpoint", endpoint]
    return subprocess.run(
        [*command, "--max-frame-age", str(max_age)], capture_output=True, text=True, timeout=30
    )


def wait_status(subscriber: Subscriber, predicate: object, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = subscriber.recv(2.0)
        if message is not None and predicate(message[1]):  # type: ignore[operator]
            return message[1]
    raise AssertionError(f"no matching status within {timeout:.0f} s")


def test_silence_is_unhealthy() -> None:
    result = health(f"tcp://127.0.0.1:{free_port()}", 20)
    assert result.returncode == 1
    assert "unhealthy: no valid status from" in result.stdout


@pytest.mark.slow
def test_health_follows_a_live_camera_that_freezes_then_dies(
    tiny_onnx_path: Path, sample_video: Path, tmp_path: Path
) -> None:
    camera = MjpegCamera(jpeg_frames(make_clip(sample_video, tmp_path / "clip.mp4", frames=24)), fps=15)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    daemon = subprocess.Popen(
        [
            *(sys.executable, "-m", "edge.commands.edge_cli", "run", "--model", str(tiny_onnx_path)),
            *("--source", camera.url, "--endpoint", endpoint, "--log-level", "WARNING"),
            # A capture that hangs without the camera layer noticing (a V4L2 device has no read
            # timeout): only the frame age can tell. A network camera's own timeout is tested in
            # test_faults.
            *("--read-timeout", "60"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    subscriber = Subscriber(endpoint, ("status",))
    try:
        wait_status(subscriber, lambda s: s["camera"] == "ok" and s["last_frame_age_s"] is not None, 90)
        healthy = health(endpoint, MAX_AGE_S)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        assert "healthy: last frame" in healthy.stdout

        camera.freeze()  # with --read-timeout 60 the camera reads "ok" for a minute
        hung = wait_status(subscriber, lambda s: (s["last_frame_age_s"] or 0) > MAX_AGE_S + 1, 25)
        assert hung["camera"] == "ok" and hung["state"] != "stopping"  # status alone looks fine
        result = health(endpoint, MAX_AGE_S)
        assert result.returncode == 1
        assert "unhealthy: no frame extracted for" in result.stdout

        camera.die()
        wait_status(subscriber, lambda s: s["camera"] in ("lost", "connecting"), 60)
        result = health(endpoint, MAX_AGE_S)
        assert result.returncode == 1
        assert "unhealthy: camera lost" in result.stdout or "unhealthy: camera connecting" in result.stdout
    finally:
        subscriber.close()
        daemon.terminate()
        daemon.wait(10)
        camera.die()
