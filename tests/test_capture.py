"""Capture thread: latest-frame box semantics and reconnection, with scripted fake sources."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edge.camera.capture import CapturedFrame, CaptureThread, LatestFrameBox
from edge.camera.frame import Frame, SourceError, SourceLost
from edge.camera.sources import is_live_spec, source_kind

GUARD_S = 30.0


def item(i: int) -> CapturedFrame:
    return CapturedFrame(Frame(np.zeros((4, 4, 3), np.uint8), float(i), i), 1)


def test_is_live_spec() -> None:
    assert all(map(is_live_spec, [0, "2", "/dev/video0", "rtsp://cam/stream", "http://x/y.mjpg"]))
    assert not any(map(is_live_spec, ["clip.mp4", "/data/video.avi", "demo.gif"]))


def test_liveness_is_decided_once_and_ignores_surrounding_spaces() -> None:
    from edge.camera.sources import open_source

    assert [source_kind(s) for s in (" /dev/video0", " 3 ", " RTSP://cam/x", " clip.mp4")] == [
        "camera", "camera", "stream", "file",
    ]  # fmt: skip
    # open_source takes the same decision: a padded camera path is a camera, not a missing file.
    with pytest.raises(SourceError, match="cannot open camera '/dev/video99'"):
        open_source(" /dev/video99")


def test_live_box_keeps_newest_and_counts_drops() -> None:
    box = LatestFrameBox(drop_stale=True)
    for i in range(5):
        assert box.put(item(i))
    got = box.get(timeout=GUARD_S)
    assert got is not None and got.frame.index == 4
    assert box.dropped == 4
    assert box.get(timeout=0.01) is None  # empty: times out


def test_file_box_waits_for_the_consumer_and_drops_nothing() -> None:
    box = LatestFrameBox(drop_stale=False)
    produced: list[int] = []

    def producer() -> None:
        for i in range(20):
            box.put(item(i))
            produced.append(i)
        box.finish()

    thread = threading.Thread(target=producer)
    thread.start()
    received = []
    while (got := box.get(timeout=GUARD_S)) is not None:
        received.append(got.frame.index)
        assert len(produced) <= len(received) + 1  # never more than one frame ahead
    thread.join(GUARD_S)
    assert received == list(range(20)) and box.dropped == 0 and box.finished


def test_finish_wakes_a_blocked_producer() -> None:
    box = LatestFrameBox(drop_stale=False)
    box.put(item(0))
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(box.put(item(1))))
    thread.start()
    box.finish()
    thread.join(GUARD_S)
    assert result == [False]


class FakeSource:
    """Delivers ``frames`` frames, then raises SourceLost (live) or returns None (file)."""

    def __init__(self, frames: int, live: bool) -> None:
        self.left, self.live, self.fps, self.closed = frames, live, 30.0, False
        self.n = 0

    def read(self) -> Frame | None:
        if self.left == 0:
            if self.live:
                raise SourceLost("camera lost: fake")
            return None
        self.left -= 1
        self.n += 1
        return Frame(np.zeros((4, 4, 3), np.uint8), float(self.n), self.n)

    def close(self) -> None:
        self.closed = True


def run_to_eof(spec: str, source: FakeSource) -> tuple[CaptureThread, list[int]]:
    """Run a capture thread over a file-like ``source`` to its end; the indexes of the frames offered."""
    box = LatestFrameBox(drop_stale=False)
    capture = CaptureThread(spec, box, source=source)  # type: ignore[arg-type]
    capture.start()
    frames = []
    while (got := box.get(timeout=GUARD_S)) is not None:
        frames.append(got.frame.index)
    capture.join(GUARD_S)
    return capture, frames


def test_live_source_missing_then_lost_then_recovered() -> None:
    attempts: list[float] = []
    script = [None, None, FakeSource(3, live=True), None, FakeSource(2, live=True)]

    def opener(spec: str, loop: bool = False) -> FakeSource:
        attempts.append(time.monotonic())
        source = script.pop(0) if script else None
        if source is None:
            raise SourceError(f"cannot open camera {spec!r}: device not found")
        return source

    box = LatestFrameBox(drop_stale=True)
    capture = CaptureThread("/dev/video9", box, opener=opener, backoff_initial_s=0.01, backoff_max_s=0.04)
    assert capture.state == "connecting"
    capture.start()
    connections = set()
    deadline = time.monotonic() + GUARD_S
    while len(connections) < 2 and time.monotonic() < deadline:
        got = box.get(timeout=0.1)
        if got is not None:
            connections.add(got.connection)
    capture.stop()
    capture.join(GUARD_S)
    assert connections == {1, 2}  # frames from the first connection, then from the reconnection
    assert len(attempts) >= 5
    assert capture.state in ("lost", "ok")
    gaps = np.diff(attempts[:3])
    assert gaps[1] >= gaps[0] * 0.5  # backoff does not shrink (sleep jitter tolerated)


def test_file_source_ends_with_eof() -> None:
    source = FakeSource(5, live=False)
    capture, frames = run_to_eof("clip.mp4", source)
    assert frames == [1, 2, 3, 4, 5]
    assert capture.state == "eof" and source.closed and capture.captured == 5


def test_bad_frames_are_counted_not_fatal() -> None:
    class Bad(FakeSource):
        def read(self) -> Frame | None:
            frame = super().read()
            if frame is not None and frame.index % 2:
                return Frame(np.zeros((4, 4), np.float32), frame.timestamp, frame.index)
            return frame

    capture, frames = run_to_eof("clip.mp4", Bad(6, live=False))
    assert frames == [2, 4, 6] and capture.bad_frames == 3


@pytest.mark.parametrize("live", [True, False])
def test_stop_ends_the_thread(live: bool) -> None:
    def opener(spec: str, loop: bool = False) -> FakeSource:
        raise SourceError("nothing there")

    box = LatestFrameBox(drop_stale=live)
    capture = CaptureThread("/dev/video9" if live else "x.mp4", box, opener=opener, backoff_initial_s=5.0)
    capture.start()
    capture.stop()
    capture.join(GUARD_S)
    assert not capture.is_alive()


def test_packets_a_jpeg_stream_skipped_count_as_bad_frames(caplog: pytest.LogCaptureFixture) -> None:
    """A JPEG stream's packets that were no JPEG (skipped by the source) reach ``bad_frames`` and the log."""

    class Skipping(FakeSource):
        skipped_packets = 0

        def read(self) -> Frame | None:
            self.skipped_packets += 2  # two garbage packets before every frame
            return super().read()

    capture, frames = run_to_eof("http://cam/video.mjpg", Skipping(3, live=False))
    assert frames == [1, 2, 3] and capture.bad_frames == 8  # 2 per read, the EOF read included
    assert "packets from http://cam/video.mjpg were no JPEG: skipped" in caplog.text
