"""Video sources: files, V4L2 cameras and network streams behind one small iterator API.

Extraction (``slr-extract``) and the daemon both read frames through :func:`open_source`, so
they agree on colour order (RGB, what MediaPipe wants), on timestamps and on what a failure
looks like:

* Opening fails → :class:`SourceError`, whose message is one line naming the source.
* A file ends → :meth:`VideoSource.read` returns ``None`` and iteration stops
  (or, with ``loop=True``, the file restarts and timestamps keep increasing).
* A live source (camera, stream) stops delivering frames after it was opened →
  :class:`SourceLost` (a :class:`SourceError`) from ``read()`` and from iteration. A live
  source never returns ``None``, so "camera lost" can't be confused with a normal end: the
  daemon catches ``SourceLost`` and reopens or exits.

Two rules every tool gets from here: a source is shown only through :func:`redact` (a camera URL's
``user:password@`` never reaches a log, an error or a subscriber), and only regular files and
character devices are opened (:func:`check_source_path`: a FIFO would block the decoder forever).
Network streams are opened and read with bounded timeouts, so a peer that accepts and never
answers, or a stream that freezes, becomes a :class:`SourceError` instead of a hang.
"""

from __future__ import annotations

import logging
import math
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Literal

import cv2
import numpy as np

from edge.camera.frame import BadFrame, Frame, FrameTooLarge, SourceError, SourceLost
from edge.camera.jpeg import jpeg_size
from edge.util.redact import redact

#: Containers OpenCV's FFmpeg backend decodes (checked, GIF included); used to find videos by id.
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif")
_OPENCV_LOG_LEVEL_ERROR = 2  # cv2.utils.logging.LOG_LEVEL_ERROR, absent from the pip wheels
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")

#: Default bounds for network streams (the daemon's settings override them): opening (connect +
#: probe) and the wait for the next frame. FFmpeg's own defaults are 30 s or unbounded.
STREAM_OPEN_TIMEOUT_S = 5.0
STREAM_READ_TIMEOUT_S = 5.0
#: FFmpeg decoder threads for a network stream. OpenCV's default (one per core) turns on frame
#: threading, which holds each frame back by one frame period per extra thread and costs more CPU
#: in handing frames between threads (measured on a live 720p H.264 stream here: 0.235 → 0.21 of a
#: core with the RGB conversion, the decode itself ~4 ms a frame). A live stream is decoded at its
#: own rate, which one thread keeps up with; files keep OpenCV's default (read as fast as possible).
STREAM_DECODER_THREADS = 1

#: Consecutive packets of a JPEG stream that may fail to be a JPEG before the stream counts as lost.
MAX_SKIPPED_PACKETS = 64

#: Largest decoded frame (width x height) any tool accepts by default: 4096x2160 (DCI 4K). A frame
#: costs 3 bytes per pixel in BGR, again in RGB, and more inside MediaPipe, so an 8192x8192 stream
#: (a 200 KB file can hold one: a "decompression bomb") would take GBs. The daemon's setting
#: ``max_frame_pixels`` (edge/daemon/config.py) defaults to this; it may not exceed the limit below.
MAX_FRAME_PIXELS = 4096 * 2160
MAX_FRAME_PIXELS_LIMIT = 7680 * 4320  # 8K UHD

#: A file may end this share of its declared frame count early before it counts as truncated
#: (frame counts of variable-rate containers are estimates from duration x rate).
TRUNCATION_SLACK = 0.05

log = logging.getLogger(__name__)

# FFmpeg's "moov atom not found" and friends would otherwise be printed for every bad file;
# we report those ourselves as SourceError. Read by OpenCV when it opens a capture.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def camera_path(device: str | int) -> str:
    """The device file of a camera spec: ``0`` → ``/dev/video0``; ``/dev/...`` unchanged."""
    text = str(device).strip()
    return f"/dev/video{text}" if text.isdigit() else text


_FILE_TYPES = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a directory"),
)


def check_source_path(spec: str | os.PathLike[str]) -> None:
    """Refuse a path no decoder should be given; raise :class:`SourceError` (one line) if so.

    A video file must be a regular file (symlinks followed) and a ``/dev/...`` camera a character
    device. A FIFO, socket or block device would make FFmpeg block forever on the first read
    (nothing writes to it) or read a disk, so every tool checks here before opening.
    """
    text = os.fspath(spec) if isinstance(spec, os.PathLike) else str(spec).strip()
    camera = source_kind(text) == "camera"
    path = camera_path(text) if camera else text
    what = f"camera {redact(text)!r}" if camera else f"video {redact(text)!r}"
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise SourceError(
            f"cannot open {what}: " + (f"device {path} not found" if camera else "file not found")
        ) from None
    except OSError as exc:
        raise SourceError(f"cannot open {what}: {exc.strerror or exc}") from None
    if camera and stat.S_ISCHR(info.st_mode):
        return
    if not camera and stat.S_ISREG(info.st_mode):
        return
    kind = next((name for test, name in _FILE_TYPES if test(info.st_mode)), "not a regular file")
    expected = "a capture device" if camera else "a video file"
    raise SourceError(f"cannot open {what}: {path} is {kind}, not {expected}")


class VideoSource:
    """Iterator of :class:`Frame` over one ``cv2.VideoCapture``; also a context manager.

    Use :func:`open_source` rather than constructing this directly.
    """

    def __init__(
        self,
        capture: cv2.VideoCapture,
        name: str,
        *,
        is_live: bool,
        loop: bool = False,
        warn_truncated: bool = True,
        max_frame_pixels: int = MAX_FRAME_PIXELS,
        jpeg_packets: bool = False,
    ) -> None:
        self._cap = capture
        #: The capture is in raw mode and its packets are JPEGs: frames stay compressed until used.
        self.jpeg_packets = jpeg_packets
        #: Packets of a JPEG stream that were not a JPEG (skipped, never decoded).
        self.skipped_packets = 0
        self.name = redact(name)  # shown in logs and errors: never with a camera password
        self.max_frame_pixels = max_frame_pixels
        self.is_live = is_live
        self._loop = loop and not is_live
        count = 0.0 if is_live else float(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0)
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps: float | None = fps if 0.0 < fps < 1000.0 else None
        #: Seconds the file's container declares (None: live, or not declared). OpenCV's frame count
        #: is this duration times the stream's rate, so the duration survives a bogus rate.
        self.declared_duration_s: float | None = (
            count / fps if 0.0 < count < 1e9 and 0.0 < fps < 1e6 else None
        )
        #: Frames the file's container declares (None: live, not declared, or only a guess); see
        #: :meth:`truncation`. A stream without a frame rate (a browser's MediaRecorder WebM: variable
        #: rate, 1 ms time base, so OpenCV reports 1000 frames/s) declares a count of duration x 1000,
        #: which is no frame count at all.
        self.expected_frames: int | None = int(count) if 0.0 < count < 1e9 and self.fps is not None else None
        self._warn_truncated = warn_truncated
        self._decoded_in_pass = 0  # frames decoded since the file (re)started
        self._pass_end_s: float | None = None  # where the last decoded frame of this pass ends (pts)
        self._truncation: str | None = None
        self._period = 1.0 / self.fps if self.fps else 1.0 / 30.0
        self._index = 0
        self._loop_offset = 0.0  # seconds added to pts after each restart
        self._last_ts = -np.inf
        self._closed = False
        # The size the container or stream declares, before anything is decoded at that size.
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        if width > 0 and height > 0 and width * height > max_frame_pixels:
            self.close()
            what = f"{'camera' if is_live else 'video'} {self.name!r}"
            raise FrameTooLarge(what, width, height, max_frame_pixels)
        # Decode the first frame now: a file that opens but can't be decoded (corrupt streams,
        # truncated data) must fail at open time with a clear message, not look like an empty video.
        try:
            first = self._grab()
            if first is not None and first.compressed:
                first.pixels()  # this camera's JPEGs must decode here (or the stream is decoded by FFmpeg)
        except BadFrame:
            self.close()
            raise
        self._pending: Frame | None = None
        if first is None:
            self.close()
            what = "camera" if is_live else "video"
            raise SourceError(f"cannot read {what} {self.name!r}: no frame could be decoded")
        self._pending = first

    # -- public API -------------------------------------------------------------------------

    def read(self) -> Frame | None:
        """The next frame; ``None`` at the end of a file. Raises :class:`SourceLost` for live sources,
        and :class:`FrameTooLarge` for a frame over ``max_frame_pixels`` (the next read goes on)."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return pending
        if self._closed:
            return None
        frame = self._grab()
        if frame is None and not self.is_live:
            self._file_ended()
        if frame is None and self._loop and self._index > 0:
            frame = self._restart()
        if frame is None and self.is_live:
            raise SourceLost(f"camera lost: {self.name!r} stopped delivering frames")
        return frame

    def truncation(self) -> str | None:
        """After the end of a file: why it is incomplete (one line), or None if it is whole.

        A file cut short (a copy interrupted, a faststart mp4 or mkv whose header survived) decodes
        a prefix and then ends as if it were complete. Its container still declares the full length,
        so a decode that ends more than :data:`TRUNCATION_SLACK` short of it is reported here
        (``slr-extract`` fails the video, ``slr-predict`` and the daemon warn). The length compared
        is the declared *duration* against the decoded frames' timestamps where both are known: a
        frame count is duration x rate, and a variable-rate file (every browser recording) has no
        honest rate. Only without timestamps are frame counts compared.
        """
        return self._truncation

    def close(self) -> None:
        """Release the capture (idempotent)."""
        self._pending = None
        if not self._closed:
            self._closed = True
            self._cap.release()

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VideoSource({self.name!r}, fps={self.fps}, is_live={self.is_live})"

    # -- internals --------------------------------------------------------------------------

    def _grab(self) -> Frame | None:
        if self.jpeg_packets:
            return self._grab_jpeg()
        # A fresh array per frame, handed to the Frame as it is: consumers may keep frames (held
        # idle frames, the preview), and the RGB conversion happens in it on first use.
        ok, bgr = self._cap.read()
        if not ok or bgr is None or bgr.size == 0:
            return None
        height, width = bgr.shape[:2]
        self._check_size(width, height)
        frame = Frame(None, *self._stamp(), bgr=bgr)
        self._index += 1
        self._decoded_in_pass += 1
        return frame

    def _grab_jpeg(self) -> Frame | None:
        """The next packet of a JPEG stream as a compressed frame; packets that are not a JPEG are skipped."""
        for _ in range(MAX_SKIPPED_PACKETS):
            ok, packet = self._cap.read()  # raw mode: the packet's bytes, a fresh 1 x N array
            if not ok or packet is None or packet.size == 0:
                return None
            jpeg = packet.reshape(-1)
            size = jpeg_size(jpeg)
            if size is None:
                self.skipped_packets += 1
                continue
            self._check_size(*size)  # before a byte is decoded: a small JPEG can declare 8192x8192
            width, height = size
            frame = Frame.from_jpeg(jpeg, width, height, *self._stamp())
            self._index += 1
            self._decoded_in_pass += 1
            return frame
        return None

    def _check_size(self, width: int, height: int) -> None:
        """Raise :class:`FrameTooLarge` for a frame over the limit (a stream may grow after opening)."""
        if width * height > self.max_frame_pixels:
            self._index += 1
            what = f"frame {self._index - 1} of {self.name!r}"
            raise FrameTooLarge(what, width, height, self.max_frame_pixels)

    def _stamp(self) -> tuple[float, int, float]:
        """``(timestamp, index, captured_at)`` for the frame just read."""
        grabbed_at = time.time()
        if self.is_live:
            ts = grabbed_at
        else:
            pos_ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
            ts = self._loop_offset + (pos_ms / 1000.0 if pos_ms >= 0 else self._index * self._period)
            if ts <= self._last_ts:  # containers with missing/odd pts: never let time go backwards
                ts = self._last_ts + self._period
            self._pass_end_s = pos_ms / 1000.0 + self._period if pos_ms >= 0 else None
        self._last_ts = ts
        return ts, self._index, grabbed_at

    def _file_ended(self) -> None:
        decoded, expected = self._decoded_in_pass, self.expected_frames
        duration, end = self.declared_duration_s, self._pass_end_s
        if self._truncation is not None:
            return
        if duration is not None and end is not None:
            short = end < duration - max(2 * self._period, TRUNCATION_SLACK * duration)
            seconds = f" ({end:.1f} s of {duration:.1f} s)"
        elif expected is not None:
            short = decoded < expected - max(2, math.ceil(TRUNCATION_SLACK * expected))
            seconds = ""
        else:
            return
        if short:
            declared = f"the {expected} frames" if expected is not None else "the length"
            self._truncation = (
                f"video {self.name!r} is incomplete: decoded {decoded} of {declared}{seconds} "
                "its container declares (truncated or damaged file?)"
            )
            if self._warn_truncated:
                log.warning("%s", self._truncation)

    def _restart(self) -> Frame | None:
        self._decoded_in_pass = 0
        if not self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
            return None
        self._loop_offset = self._last_ts + self._period
        return self._grab()


def quiet_opencv_warnings() -> None:
    """Hide OpenCV's own WARN lines (e.g. a failed open), which :class:`SourceError` already reports.

    Process-wide, so tools call it (``slr-extract`` does); the library itself leaves logging alone.
    """
    cv2.setLogLevel(_OPENCV_LOG_LEVEL_ERROR)


SourceKind = Literal["camera", "stream", "file"]


def source_kind(spec: str | int) -> SourceKind:
    """What ``spec`` names, decided from the text alone (surrounding spaces ignored).

    The one place that decides whether a source is live: a camera that is unplugged at start must
    still be treated as live (retry) while a missing file is an error (it will not appear by
    retrying), so it cannot depend on whether opening works.
    """
    if isinstance(spec, int):
        return "camera"
    text = str(spec).strip()
    if text.isdigit() or text.startswith("/dev/"):
        return "camera"
    if text.lower().startswith(STREAM_SCHEMES):
        return "stream"
    return "file"


def is_live_spec(spec: str | int) -> bool:
    """Whether ``spec`` names a live source (camera index, ``/dev/...``, stream URL) rather than a file."""
    return source_kind(spec) != "file"


def open_source(
    spec: str | int,
    *,
    loop: bool = False,
    open_timeout_s: float = STREAM_OPEN_TIMEOUT_S,
    read_timeout_s: float = STREAM_READ_TIMEOUT_S,
    warn_truncated: bool = True,
    max_frame_pixels: int = MAX_FRAME_PIXELS,
) -> VideoSource:
    """Open a video file, a camera (``/dev/videoN``, ``N`` or ``"N"``) or an RTSP/HTTP(S) URL.

    ``loop`` restarts a file at its end (ignored for live sources). A file that ends short of its
    declared frame count is logged as a warning unless ``warn_truncated`` is off (callers that
    report :meth:`VideoSource.truncation` themselves). ``open_timeout_s`` and
    ``read_timeout_s`` bound a network stream's connection and each wait for a frame (a stream
    silent for longer counts as lost). Frames of more than ``max_frame_pixels`` pixels are refused
    (:class:`FrameTooLarge`): at open time from the size the container or stream declares, before
    a frame is decoded, and on every frame. Raises :class:`SourceError` with a one-line message (the
    source shown through :func:`redact`) when the source can't be opened or its first frame can't
    be decoded.
    """
    if isinstance(spec, bool) or not isinstance(spec, (str, int, os.PathLike)):
        raise SourceError(f"cannot open source {spec!r}: expected a path, URL or camera index")
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    kind = source_kind(spec)
    if kind == "file":
        return _open_file(str(spec), loop, warn_truncated, max_frame_pixels)
    text = str(spec).strip()
    if kind == "camera":
        return _open_camera(int(text) if text.isdigit() else text, max_frame_pixels)
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        max(1, round(open_timeout_s * 1000)),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        max(1, round(read_timeout_s * 1000)),
        cv2.CAP_PROP_N_THREADS,
        STREAM_DECODER_THREADS,
    ]
    for keep_jpeg in (True, False):
        cap = cv2.VideoCapture(text, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            raise SourceError(
                f"cannot open stream {redact(text)!r}: unreachable, not answering within "
                f"{open_timeout_s:g} s, or not a video stream"
            )
        jpeg = keep_jpeg and _raw_jpeg_mode(cap)
        try:
            return VideoSource(cap, text, is_live=True, max_frame_pixels=max_frame_pixels, jpeg_packets=jpeg)
        except BadFrame as exc:
            if not jpeg or isinstance(exc, FrameTooLarge):
                raise
            # JPEGs libjpeg can't read (e.g. Motion-JPEG without Huffman tables): let FFmpeg decode.
            log.info("%s: its JPEG frames need FFmpeg's decoder; decoding every frame", redact(text))
    raise AssertionError("unreachable")  # the second pass returns or raises


def _raw_jpeg_mode(cap: cv2.VideoCapture) -> bool:
    """Switch a just-opened Motion-JPEG stream to raw packets (JPEG bytes, not decoded); whether it was."""
    fourcc = int(cap.get(cv2.CAP_PROP_FOURCC) or 0)
    if fourcc != cv2.VideoWriter.fourcc(*"MJPG"):
        return False
    return bool(cap.set(cv2.CAP_PROP_FORMAT, -1))


def _open_camera(device: str | int, max_frame_pixels: int) -> VideoSource:
    path = camera_path(device)
    check_source_path(path)
    if not os.access(path, os.R_OK | os.W_OK):
        raise SourceError(f"cannot open camera {str(device)!r}: permission denied on {path} (video group?)")
    cap = cv2.VideoCapture(device, cv2.CAP_V4L2)
    if not cap.isOpened():
        raise SourceError(f"cannot open camera {str(device)!r}: {path} is busy or not a capture device")
    return VideoSource(cap, str(device), is_live=True, max_frame_pixels=max_frame_pixels)


def _open_file(spec: str, loop: bool, warn_truncated: bool, max_frame_pixels: int) -> VideoSource:
    path = Path(spec)
    check_source_path(path)
    shown = redact(spec)
    if not os.access(path, os.R_OK):
        raise SourceError(f"cannot open video {shown!r}: permission denied")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise SourceError(
            f"cannot open video {shown!r}: not a readable video (corrupt or unsupported format)"
        )
    return VideoSource(
        cap, spec, is_live=False, loop=loop, warn_truncated=warn_truncated, max_frame_pixels=max_frame_pixels
    )
