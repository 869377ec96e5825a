"""Frames of an MJPEG network camera stay JPEG bytes until something needs their pixels.

What is checked: the JPEG header reader (size, refusal of what is not a JPEG); a frame kept as JPEG
decodes only when read, to the same pixels libjpeg gives, and its motion copy comes from a 1/8-scale
decode; a live MJPEG stream is read as packets (FFmpeg decodes nothing) whose pixels match what
FFmpeg's own decoder gives; garbage packets are skipped, oversized JPEGs refused before a byte is
decoded, and a camera whose JPEGs libjpeg can't read falls back to FFmpeg's decoder.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from deploy_support import MjpegCamera, free_port, jpeg_frames, make_clip

from edge.camera.frame import BadFrame, Frame, FrameTooLarge
from edge.camera.jpeg import jpeg_size
from edge.camera.sources import open_source


def encode(image: np.ndarray, *params: int) -> bytes:
    ok, data = cv2.imencode(".jpg", image, list(params))
    assert ok
    return data.tobytes()


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth colour texture (JPEG keeps it close), BGR."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(1, height // 16), max(1, width // 16), 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def segments(jpeg: bytes) -> list[tuple[int, bytes]]:
    """``(marker, whole segment)`` up to and including SOS (the rest: entropy data and EOI)."""
    out, pos = [], 2
    while True:
        marker, length = jpeg[pos + 1], int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
        if marker == 0xDA:
            out.append((marker, jpeg[pos:]))
            return out
        out.append((marker, jpeg[pos : pos + 2 + length]))
        pos += 2 + length


def rebuild(jpeg: bytes, keep: Callable[[int], bool]) -> bytes:
    return b"\xff\xd8" + b"".join(seg for marker, seg in segments(jpeg) if keep(marker))


# -- the header ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "params"),
    [
        ((720, 1280, 3), ()),
        ((1280, 720, 3), (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)),
        ((37, 53, 3), (cv2.IMWRITE_JPEG_QUALITY, 30)),
        ((480, 640), ()),  # grey: one component
    ],
    ids=["720p", "portrait-progressive", "odd-size", "grey"],
)
def test_jpeg_size_reads_the_header(shape: tuple[int, ...], params: tuple[int, ...]) -> None:
    image = textured(shape[0], shape[1])
    data = encode(image if len(shape) == 3 else image[..., 0], *params)
    assert jpeg_size(data) == (shape[1], shape[0])
    assert jpeg_size(np.frombuffer(data, np.uint8)) == (shape[1], shape[0])


def test_jpeg_size_skips_an_exif_segment_and_fill_bytes() -> None:
    data = encode(textured(90, 160))
    exif = b"\xff\xe1" + (2 + 30000).to_bytes(2, "big") + b"Exif\x00\x00" + bytes(29994)
    padded = data[:2] + exif + b"\xff\xff" + data[2:]  # fill bytes before the next marker are legal
    assert jpeg_size(padded) == (160, 90)
    assert cv2.imdecode(np.frombuffer(padded, np.uint8), cv2.IMREAD_COLOR).shape == (90, 160, 3)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xd8",
        b"GIF89a" + bytes(100),
        b"\xff\xd8\xff\xd9",  # SOI EOI: no frame
        b"\xff\xd8\xff\xe0\x00\x01",  # a length below 2
        b"\xff\xd8\xff\xe0\x01\x00JFIF",  # a segment running past the end
        b"\xff\xd8\xff\xda\x00\x08" + bytes(8),  # scan data before any SOF
        b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x00\x00\x10\x03" + bytes(9),  # height 0
        b"\xff\xd8\x00\xc0\x00\x11",  # no marker where one must be
    ],
    ids=[
        "empty",
        "soi-only",
        "gif",
        "no-frame",
        "short-length",
        "truncated",
        "sos-first",
        "zero-size",
        "no-ff",
    ],
)
def test_jpeg_size_refuses_what_is_not_a_jpeg(data: bytes) -> None:
    assert jpeg_size(data) is None


def test_jpeg_size_of_a_truncated_header_is_none() -> None:
    data = encode(textured(90, 160))
    sof = data.index(b"\xff\xc0")
    assert jpeg_size(data[: sof + 6]) is None
    assert jpeg_size(data[: sof + 9]) == (160, 90)


# -- a frame kept as JPEG ---------------------------------------------------------------------------


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> dict[int, int]:
    """Counts ``cv2.imdecode`` calls by flag (full colour, 1/8 scale)."""
    counts: dict[int, int] = {}
    real = cv2.imdecode

    def counting(buf: Any, flags: int) -> Any:
        counts[flags] = counts.get(flags, 0) + 1
        return real(buf, flags)

    monkeypatch.setattr(cv2, "imdecode", counting)
    return counts


def jpeg_frame(image: np.ndarray, index: int = 0) -> Frame:
    data = np.frombuffer(encode(image, cv2.IMWRITE_JPEG_QUALITY, 90), np.uint8)
    size = jpeg_size(data)
    assert size is not None
    return Frame.from_jpeg(data, *size, timestamp=index / 30, index=index)


def test_a_jpeg_frame_is_decoded_only_when_its_pixels_are_read(decodes: dict[int, int]) -> None:
    bgr = textured(720, 1280)
    frame = jpeg_frame(bgr)
    assert frame.compressed and frame.shape == (720, 1280, 3) and not decodes
    small, is_bgr = frame.small_pixels()
    assert is_bgr and small.shape == (90, 160, 3)
    assert frame.compressed and decodes == {cv2.IMREAD_REDUCED_COLOR_8: 1}  # the motion copy decodes 1/8
    expected = cv2.imdecode(
        np.frombuffer(encode(bgr, cv2.IMWRITE_JPEG_QUALITY, 90), np.uint8), cv2.IMREAD_COLOR
    )
    decodes.clear()
    rgb = frame.rgb
    assert not frame.compressed and decodes == {cv2.IMREAD_COLOR: 1}
    assert np.array_equal(rgb, expected[..., ::-1])
    assert frame.rgb is rgb and decodes == {cv2.IMREAD_COLOR: 1}  # once
    # the motion copy stays the 1/8 decode after the full one: frames of a source always compare alike
    assert np.array_equal(frame.small_pixels()[0], small)
    # each small pixel is the mean of an 8x8 block of the picture (within JPEG's rounding)
    means = expected.reshape(90, 8, 160, 8, 3).mean(axis=(1, 3))
    assert np.abs(means - small).mean() < 2.0


def test_a_jpeg_frame_that_does_not_decode_is_a_bad_frame() -> None:
    data = encode(textured(90, 160))
    no_tables = rebuild(data, lambda marker: marker != 0xDB)  # no quantisation table: undecodable
    frame = Frame.from_jpeg(np.frombuffer(no_tables, np.uint8), 160, 90, 0.0, 0)
    with pytest.raises(BadFrame, match="frame 0: its JPEG data decodes to nothing"):
        frame.rgb  # noqa: B018 - the property decodes
    with pytest.raises(BadFrame):
        frame.small_pixels()
    lying = Frame.from_jpeg(np.frombuffer(data, np.uint8), 320, 90, 0.0, 1)  # a header that lies
    with pytest.raises(BadFrame, match="decodes to 160x90, not the 320x90"):
        lying.pixels()


# -- a live MJPEG stream ------------------------------------------------------------------------------


@pytest.fixture
def mjpeg_stream(tmp_path: Path) -> Iterator[Callable[[Path], str]]:
    """Serves a clip as Motion-JPEG over HTTP (``ffmpeg -re``, looped), as an MJPEG camera does."""
    servers: list[subprocess.Popen[bytes]] = []

    def serve(clip: Path) -> str:
        url = f"http://127.0.0.1:{free_port()}/cam.mjpg"
        servers.append(
            subprocess.Popen(
                [
                    *("ffmpeg", "-loglevel", "quiet", "-re", "-stream_loop", "-1", "-i", str(clip)),
                    *("-c:v", "mjpeg", "-q:v", "5", "-f", "mpjpeg", "-listen", "1", url),
                ],
                stdin=subprocess.DEVNULL,
            )
        )
        return url

    yield serve
    for server in servers:
        server.kill()
        server.wait()


def open_when_served(url: str, **kwargs: Any) -> Any:
    deadline = time.monotonic() + 20
    while True:
        try:
            return open_source(url, **kwargs)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_a_live_mjpeg_stream_is_read_as_jpeg_packets_that_decode_like_ffmpeg(
    tmp_path: Path, sample_video: Path, mjpeg_stream: Callable[[Path], str], decodes: dict[int, int]
) -> None:
    """One still picture served as MJPEG: read raw, frames stay JPEG; decoded, they equal FFmpeg's pixels."""
    still = tmp_path / "still.mp4"
    subprocess.run(
        [
            *("ffmpeg", "-loglevel", "error", "-y", "-i", str(sample_video), "-vf"),
            *("select='eq(n,30)',loop=-1:1:0,scale=640:360", "-frames:v", "60", "-r", "30", str(still)),
        ],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    url = mjpeg_stream(still)
    with open_when_served(url) as source:
        assert source.jpeg_packets and source.is_live
        frames = [source.read() for _ in range(12)]
    assert all(f is not None and f.shape == (360, 640, 3) for f in frames)
    # the first frame is decoded at open (proof that libjpeg reads this camera), the others never were
    assert [f.compressed for f in frames if f is not None] == [False] + [True] * 11
    assert decodes.get(cv2.IMREAD_COLOR) == 1
    last = frames[-1]
    assert last is not None and last.jpeg is not None
    packet = tmp_path / "packet.jpg"
    packet.write_bytes(last.jpeg.tobytes())
    ours = last.rgb
    cap = cv2.VideoCapture(str(packet), cv2.CAP_FFMPEG)  # FFmpeg's MJPEG decoder on the same bytes
    ok, theirs = cap.read()
    cap.release()
    assert ok and theirs.shape == ours.shape
    difference = np.abs(theirs[..., ::-1].astype(np.int16) - ours).mean()
    print(f"\nmean |libjpeg - FFmpeg| = {difference:.2f} levels")
    assert difference < 2.0


def test_garbage_packets_are_skipped_and_oversized_jpegs_refused_before_decoding(
    tmp_path: Path, sample_video: Path, decodes: dict[int, int]
) -> None:
    normal = jpeg_frames(make_clip(sample_video, tmp_path / "clip.mp4", frames=4), width=320)
    huge = encode(np.zeros((4096, 4096, 3), np.uint8))  # 16.8 Mpx: over a 4 Mpx limit
    camera = MjpegCamera([normal[0], b"not a jpeg at all", normal[1], huge, normal[2]], fps=30)
    try:
        with open_when_served(camera.url, max_frame_pixels=2048 * 2048) as source:
            assert source.jpeg_packets
            got, refused = [], 0
            while len(got) < 8:
                try:
                    frame = source.read()
                except FrameTooLarge as exc:
                    refused += 1
                    assert "4096x4096" in str(exc)
                    continue
                assert frame is not None
                got.append(frame)
            assert source.skipped_packets >= 1 and refused >= 1
    finally:
        camera.die()
    assert all(f.shape[:2] == (180, 320) or f.shape[1] == 320 for f in got)
    assert decodes.get(cv2.IMREAD_COLOR) == 1  # only the first frame's check: the 4096² one never was


def test_a_camera_whose_jpegs_libjpeg_cannot_read_is_decoded_by_ffmpeg(
    tmp_path: Path, sample_video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    normal = jpeg_frames(make_clip(sample_video, tmp_path / "clip.mp4", frames=4), width=320)
    camera = MjpegCamera(normal, fps=30)
    monkeypatch.setattr(cv2, "imdecode", lambda buf, flags: None)  # as for a dialect libjpeg refuses
    try:
        with open_when_served(camera.url) as source:
            assert not source.jpeg_packets
            frame = source.read()
            assert frame is not None and not frame.compressed and frame.rgb.shape[1] == 320
    finally:
        camera.die()


def test_decode_ahead_decodes_jpeg_frames_in_its_thread_and_keeps_a_bad_one_for_its_consumer() -> None:
    """``prefetched`` (slr-predict --segments on a stream) decodes JPEG frames ahead; a bad one stays bad."""
    from contextlib import closing

    from edge.camera.prefetch import prefetched

    good = [jpeg_frame(textured(90, 160, seed), index) for seed, index in ((1, 0), (2, 1))]
    data = encode(textured(90, 160))
    bad = Frame.from_jpeg(np.frombuffer(rebuild(data, lambda m: m != 0xDB), np.uint8), 160, 90, 2 / 30, 2)
    with closing(prefetched([*good, bad])) as frames:
        first, second, third = frames
        assert not first.compressed and not second.compressed and first.rgb.shape == (90, 160, 3)
        with pytest.raises(BadFrame):
            third.rgb  # noqa: B018 - the property decodes


def test_the_motion_copy_of_a_jpeg_frame_is_decoded_once(decodes: dict[int, int]) -> None:
    """The gate measures a sample, then keeps the same frame as its reference: one 1/8 decode."""
    frame = jpeg_frame(textured(720, 1280))
    first, _ = frame.small_pixels()
    again, _ = frame.small_pixels()
    assert again is first and decodes == {cv2.IMREAD_REDUCED_COLOR_8: 1}
