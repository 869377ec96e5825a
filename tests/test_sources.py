"""Video sources: files (mp4, gif), looping, failures with one-line messages, live-source loss."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera.frame import Frame, SourceError, SourceLost
from edge.camera.sources import VideoSource, open_source

SAMPLE_FRAMES = 112
GIF_FRAMES = 150


def _assert_one_line_naming(exc: SourceError, name: str) -> None:
    message = str(exc)
    assert "\n" not in message
    assert name in message


def test_mp4_frames_are_rgb_with_pts_timestamps(sample_video: Path) -> None:
    with open_source(str(sample_video)) as source:
        assert source.fps == pytest.approx(30.0)
        assert source.is_live is False
        assert source.name == str(sample_video)
        frames = list(source)
    assert len(frames) == SAMPLE_FRAMES
    assert [f.index for f in frames] == list(range(SAMPLE_FRAMES))
    first = frames[0].rgb
    assert first.dtype == np.uint8 and first.shape == (1280, 720, 3) and first.flags.c_contiguous
    timestamps = np.array([f.timestamp for f in frames])
    assert timestamps[0] == 0.0
    np.testing.assert_allclose(timestamps, np.arange(SAMPLE_FRAMES) / 30.0, atol=1e-3)

    ok, bgr = cv2.VideoCapture(str(sample_video)).read()
    assert ok
    np.testing.assert_array_equal(first, bgr[:, :, ::-1])  # RGB order, same pixels as OpenCV


def test_gif_is_decoded(demo_gif: Path) -> None:
    with open_source(demo_gif) as source:
        frames = list(source)
    assert len(frames) == GIF_FRAMES
    assert frames[0].rgb.shape == (398, 480, 3)
    assert np.all(np.diff([f.timestamp for f in frames]) > 0)


def test_read_returns_none_at_end_and_after_close(sample_video: Path) -> None:
    source = open_source(str(sample_video))
    for _ in range(SAMPLE_FRAMES):
        assert source.read() is not None
    assert source.read() is None
    assert source.read() is None
    source.close()
    source.close()  # idempotent
    assert source.read() is None


def test_loop_restarts_with_increasing_timestamps(sample_video: Path) -> None:
    extra = 20
    with open_source(str(sample_video), loop=True) as source:
        frames = [source.read() for _ in range(SAMPLE_FRAMES + extra)]
    assert all(f is not None for f in frames)
    timestamps = np.array([f.timestamp for f in frames])  # type: ignore[union-attr]
    assert np.all(np.diff(timestamps) > 0), "time must never go backwards across a loop"
    assert timestamps[SAMPLE_FRAMES] == pytest.approx(timestamps[SAMPLE_FRAMES - 1] + 1 / 30, abs=1e-3)
    assert [f.index for f in frames] == list(range(SAMPLE_FRAMES + extra))  # type: ignore[union-attr]
    np.testing.assert_array_equal(frames[SAMPLE_FRAMES].rgb, frames[0].rgb)  # type: ignore[union-attr]


def test_frame_is_immutable(sample_video: Path) -> None:
    with open_source(str(sample_video)) as source:
        frame = source.read()
    assert isinstance(frame, Frame)
    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.index = 5  # type: ignore[misc]


def test_frames_stay_bgr_until_rgb_is_used(sample_video: Path) -> None:
    """A frame keeps the decoder's BGR until ``.rgb`` is read (frames nobody uses are never converted)."""
    with open_source(str(sample_video)) as source:
        frame = source.read()
    assert frame is not None
    pixels, bgr = frame.pixels()
    assert bgr and pixels.shape == (1280, 720, 3)
    decoded = pixels.copy()
    rgb = frame.rgb
    np.testing.assert_array_equal(rgb, decoded[..., ::-1])
    assert frame.rgb is rgb and frame.pixels() == (rgb, False)  # converted once, in place
    ok, expected = cv2.VideoCapture(str(sample_video)).read()
    assert ok
    np.testing.assert_array_equal(rgb, cv2.cvtColor(expected, cv2.COLOR_BGR2RGB))


def test_a_frame_has_rgb_or_bgr_pixels() -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    assert Frame(image, 0.0, 0).pixels() == (image, False)
    with pytest.raises(ValueError, match="either RGB or BGR"):
        Frame(None, 0.0, 0)
    with pytest.raises(ValueError, match="either RGB or BGR"):
        Frame(image, 0.0, 0, bgr=image)
    odd = Frame(None, 0.0, 0, bgr=np.zeros((4, 4), np.float32))  # refused by its reader, not here
    assert odd.rgb.shape == (4, 4)


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.mp4")
    with pytest.raises(SourceError, match="file not found") as info:
        open_source(path)
    _assert_one_line_naming(info.value, path)


def test_random_bytes_file(tmp_path: Path) -> None:
    path = tmp_path / "random.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(SourceError, match="not a readable video") as info:
        open_source(str(path))
    _assert_one_line_naming(info.value, str(path))


def test_truncated_mp4(tmp_path: Path, sample_video: Path) -> None:
    path = tmp_path / "truncated.mp4"
    path.write_bytes(sample_video.read_bytes()[:300_000])
    with pytest.raises(SourceError) as info:
        open_source(str(path))
    _assert_one_line_naming(info.value, str(path))


@pytest.mark.parametrize("content", [b"", b"\x00" * 10])
def test_empty_or_tiny_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.avi"
    path.write_bytes(content)
    with pytest.raises(SourceError) as info:
        open_source(str(path))
    _assert_one_line_naming(info.value, str(path))


def test_directory_is_not_a_video(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is a directory"):
        open_source(str(tmp_path))


@pytest.mark.parametrize("spec", ["/dev/video97", 97, "97"])
def test_missing_camera(spec: str | int) -> None:
    with pytest.raises(SourceError, match="not found") as info:
        open_source(spec)
    _assert_one_line_naming(info.value, "97")


def test_unreachable_stream() -> None:
    with pytest.raises(SourceError, match="cannot open stream") as info:
        open_source("rtsp://127.0.0.1:1/cam")  # port 1: connection refused at once
    _assert_one_line_naming(info.value, "rtsp://127.0.0.1:1/cam")


@pytest.mark.parametrize("spec", [None, 1.5, True])
def test_bad_spec_type(spec: object) -> None:
    with pytest.raises(SourceError, match="expected a path"):
        open_source(spec)  # type: ignore[arg-type]


class _FakeCamera:
    """A capture that delivers ``frames`` frames, then fails like an unplugged USB camera."""

    def __init__(self, frames: int) -> None:
        self.left = frames
        self.released = False

    def read(self, image: np.ndarray | None = None) -> tuple[bool, np.ndarray | None]:
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, np.full((4, 6, 3), (10, 20, 30), dtype=np.uint8)  # BGR

    def get(self, prop: int) -> float:
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def set(self, prop: int, value: float) -> bool:
        return False

    def release(self) -> None:
        self.released = True


def test_live_source_loss_raises_source_lost() -> None:
    camera = _FakeCamera(frames=3)
    before = time.time()
    source = VideoSource(camera, "/dev/video0", is_live=True, loop=True)  # type: ignore[arg-type]
    frames = [source.read() for _ in range(3)]
    assert [f.index for f in frames] == [0, 1, 2]  # type: ignore[union-attr]
    assert all(before <= f.timestamp <= time.time() for f in frames)  # type: ignore[union-attr]
    assert frames[0].rgb[0, 0].tolist() == [30, 20, 10]  # type: ignore[union-attr]
    with pytest.raises(SourceLost, match="camera lost") as info:
        source.read()
    assert isinstance(info.value, SourceError)
    _assert_one_line_naming(info.value, "/dev/video0")
    source.close()
    assert camera.released


def test_live_source_loss_surfaces_from_iteration() -> None:
    source = VideoSource(_FakeCamera(frames=2), "cam", is_live=True)  # type: ignore[arg-type]
    seen = []
    with pytest.raises(SourceLost):
        for frame in source:
            seen.append(frame.index)
    assert seen == [0, 1]


def test_camera_without_first_frame_fails_at_open() -> None:
    camera = _FakeCamera(frames=0)
    with pytest.raises(SourceError, match="no frame could be decoded"):
        VideoSource(camera, "/dev/video0", is_live=True)  # type: ignore[arg-type]
    assert camera.released


@pytest.mark.parametrize(
    ("shown", "expected"),
    [
        ("rtsp://admin:s3cret@10.0.0.5:554/stream", "rtsp://***@10.0.0.5:554/stream"),
        ("http://user@cam.local/video.mjpg", "http://***@cam.local/video.mjpg"),
        ("cannot open stream 'rtsp://a:b@h/x': down", "cannot open stream 'rtsp://***@h/x': down"),
        ("http://cam/video.cgi?user=admin&pwd=s3cret&res=1", "http://cam/video.cgi?user=***&pwd=***&res=1"),
        ("/dev/video0", "/dev/video0"),
        ("clips/a@b.mp4", "clips/a@b.mp4"),  # not a URL: an @ in a file name stays
        (3, "3"),
    ],
)
def test_redact_hides_credentials(shown: str | int, expected: str) -> None:
    from edge.util.redact import redact

    assert redact(shown) == expected


def _open_in_thread(spec: str, timeout_s: float) -> BaseException | None:
    """open_source(spec) in a thread; what it raised (None if it opened), or a failure if it hangs."""
    import threading

    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            open_source(spec).close()
            outcome.append(None)
        except BaseException as exc:  # handed back to the test
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not outcome:
        pytest.fail(f"open_source({spec!r}) still blocked after {timeout_s} s")
    return outcome[0]


def test_fifo_and_socket_are_refused_not_opened(tmp_path: Path) -> None:
    """A FIFO nobody writes to would block FFmpeg forever; it is refused before opening."""
    import os
    import socket

    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    sock_path = tmp_path / "clip.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    try:
        for path, kind in ((fifo, "is a FIFO"), (sock_path, "is a socket")):
            error = _open_in_thread(str(path), timeout_s=30)
            assert isinstance(error, SourceError) and kind in str(error), error
            _assert_one_line_naming(error, str(path))
    finally:
        server.close()


def test_check_source_path_wants_regular_files_and_character_devices(tmp_path: Path) -> None:
    from edge.camera.sources import check_source_path

    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    link = tmp_path / "link.mp4"
    link.symlink_to(video)
    check_source_path(video)
    check_source_path(str(link))  # symlinks are followed
    check_source_path("/dev/null")  # a character device passes here; V4L2 then says if it captures
    with pytest.raises(SourceError, match="is a directory, not a video file"):
        check_source_path(tmp_path)
    with pytest.raises(SourceError, match="device /dev/video96 not found"):
        check_source_path("96")


def test_stream_peer_that_never_answers_times_out_without_leaking_password(silent_peer: int) -> None:
    url = f"http://viewer:hunter2@127.0.0.1:{silent_peer}/cam.mjpg"
    started = time.monotonic()
    with pytest.raises(SourceError, match="cannot open stream") as info:
        open_source(url, open_timeout_s=1.0, read_timeout_s=1.0)
    elapsed = time.monotonic() - started
    assert "hunter2" not in str(info.value) and "***@127.0.0.1" in str(info.value)
    assert elapsed < 25.0, f"open took {elapsed:.1f} s despite a 1 s timeout"  # FFmpeg's own: 30 s+
