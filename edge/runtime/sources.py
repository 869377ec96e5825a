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

import dataclasses
import logging
import math
import os
import re
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Literal
from urllib.parse import unquote

import cv2
import numpy as np

from edge.runtime.jpeg import jpeg_size

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
#: ``max_frame_pixels`` (edge/runtime/config.py) defaults to this; it may not exceed the limit below.
MAX_FRAME_PIXELS = 4096 * 2160
MAX_FRAME_PIXELS_LIMIT = 7680 * 4320  # 8K UHD

#: A file may end this share of its declared frame count early before it counts as truncated
#: (frame counts of variable-rate containers are estimates from duration x rate).
TRUNCATION_SLACK = 0.05

log = logging.getLogger(__name__)

# FFmpeg's "moov atom not found" and friends would otherwise be printed for every bad file;
# we report those ourselves as SourceError. Read by OpenCV when it opens a capture.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


class Frame:
    """One frame: its pixels (made when first needed), when it was taken, and its place in the source.

    A live source delivers 30 frames a second and most are never used (the idle duty cycle holds
    them only in case the next sample shows a hand; at full rate the one-slot box drops those
    extraction is too slow for), so a frame is kept as cheap as its source allows until used:

    * an MJPEG network stream's frame stays the camera's JPEG bytes (:meth:`from_jpeg`): decoding
      is ~4 ms of a 720p frame, paid only when the pixels are read, and the motion gate measures
      a 1/8-scale decode of it instead (:meth:`small_pixels`);
    * a decoded frame keeps the decoder's BGR; the RGB that MediaPipe wants is made on first use
      of :attr:`rgb` (in place: the frame owns its array), ~0.5 ms of a 720p frame.

    Frames are shared by threads (capture, extraction, preview): each decodes or converts once,
    under its own lock.
    """

    __slots__ = ("_bgr", "_jpeg", "_lock", "_pixels", "_shape", "_small", "captured_at", "index", "timestamp")

    def __init__(
        self,
        rgb: np.ndarray | None,
        timestamp: float,
        index: int,
        captured_at: float | None = None,
        *,
        bgr: np.ndarray | None = None,
    ) -> None:
        pixels = rgb if bgr is None else bgr
        if pixels is None or (rgb is not None and bgr is not None):
            raise ValueError("a frame has either RGB or BGR pixels")
        self._pixels: np.ndarray | None = pixels
        self._bgr = bgr is not None
        self._jpeg: np.ndarray | None = None
        self._small: np.ndarray | None = None  # a JPEG frame's 1/8-scale decode, once made
        self._shape: tuple[int, ...] = pixels.shape
        self._lock = threading.Lock()
        set_field = object.__setattr__  # the fields are read-only (see __setattr__)
        set_field(self, "timestamp", timestamp)
        set_field(self, "index", index)
        set_field(self, "captured_at", time.time() if captured_at is None else captured_at)

    @classmethod
    def from_jpeg(
        cls,
        jpeg: np.ndarray,
        width: int,
        height: int,
        timestamp: float,
        index: int,
        captured_at: float | None = None,
    ) -> Frame:
        """A frame kept as JPEG bytes (1-D ``uint8``) of the size its header declares, until used."""
        frame = cls(_NO_PIXELS, timestamp, index, captured_at)
        frame._pixels, frame._jpeg, frame._shape = None, jpeg, (height, width, 3)
        return frame

    #: Seconds. Files: position in the stream (pts) from 0, increasing across loops.
    #: Live sources: ``time.time()`` at grab.
    timestamp: float
    #: 0-based frame counter of this source (keeps counting across loops).
    index: int
    #: Wall-clock ``time.time()`` when the frame was read from its source (files included): the
    #: start of the latency every ``prediction`` and ``sign`` reports.
    captured_at: float

    def __setattr__(self, name: str, value: object) -> None:
        if name in ("timestamp", "index", "captured_at"):  # a frame is a fact, shared by threads
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
        object.__setattr__(self, name, value)

    @property
    def shape(self) -> tuple[int, ...]:
        """``(H, W, 3)`` (a JPEG frame's from its header), known without decoding or converting."""
        return self._shape

    @property
    def jpeg(self) -> np.ndarray | None:
        """The camera's JPEG bytes (1-D ``uint8``) of a frame from an MJPEG stream, else None."""
        return self._jpeg

    @property
    def compressed(self) -> bool:
        """Whether the frame is still JPEG bytes (its pixels were never needed)."""
        return self._pixels is None

    @property
    def rgb(self) -> np.ndarray:
        """H x W x 3 ``uint8`` in RGB order (decoded and converted on first use).

        Raises :class:`BadFrame` for JPEG bytes that do not decode to the size their header declares.
        """
        with self._lock:
            pixels = self._decoded()
            if self._bgr:
                if _is_colour_image(pixels):  # anything else is refused by its reader, unconverted
                    if pixels.flags.c_contiguous and pixels.flags.writeable:
                        cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB, dst=pixels)
                    else:
                        pixels = self._pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
                self._bgr = False
            return pixels

    def pixels(self) -> tuple[np.ndarray, bool]:
        """The pixels as they are now (a JPEG frame decoded, not converted), and whether in BGR order."""
        with self._lock:
            return self._decoded(), self._bgr

    def small_pixels(self) -> tuple[np.ndarray, bool]:
        """The cheapest image of this frame for a motion measure, and whether it is in BGR order.

        A JPEG frame: its 1/8-scale decode (the DCT's block means, no full decode; made once, as
        the gate measures a sample and then keeps it as its reference), also after a full decode,
        so that frames of one source always compare alike. Otherwise: :meth:`pixels`.
        """
        if self._jpeg is None:
            return self.pixels()
        with self._lock:
            if self._small is None:
                self._small = cv2.imdecode(self._jpeg, cv2.IMREAD_REDUCED_COLOR_8)
                if self._small is None:
                    raise BadFrame(f"frame {self.index}: its JPEG data does not decode")
            return self._small, True

    def _decoded(self) -> np.ndarray:
        """The pixels, decoding the JPEG bytes on first use (called with the lock held)."""
        if self._pixels is None:
            assert self._jpeg is not None
            bgr = cv2.imdecode(self._jpeg, cv2.IMREAD_COLOR)
            if bgr is None or bgr.shape != self._shape:
                got = "nothing" if bgr is None else "x".join(map(str, bgr.shape[1::-1]))
                raise BadFrame(
                    f"frame {self.index}: its JPEG data decodes to {got}, not the "
                    f"{self._shape[1]}x{self._shape[0]} its header declares"
                )
            self._pixels, self._bgr = bgr, True
        return self._pixels

    def __repr__(self) -> str:
        kind = " jpeg" if self.compressed else ""
        return f"Frame(index={self.index}, timestamp={self.timestamp:.3f}, shape={self._shape}{kind})"


_NO_PIXELS = np.zeros((0, 0, 3), np.uint8)  # a placeholder :meth:`Frame.from_jpeg` replaces at once


def _is_colour_image(pixels: object) -> bool:
    """Whether ``pixels`` is an H x W x 3 ``uint8`` image (what every reader accepts)."""
    return (
        isinstance(pixels, np.ndarray)
        and pixels.dtype == np.uint8
        and pixels.ndim == 3
        and pixels.shape[2] == 3
        and pixels.size > 0
    )


class SourceError(Exception):
    """A source can't be opened or read; ``str(e)`` is one line naming the source."""


class SourceLost(SourceError):
    """A live source (camera, stream) stopped delivering frames after it was opened."""


class BadFrame(SourceError):
    """One frame can't be used (undecodable, or too large); the source itself goes on."""


class FrameTooLarge(BadFrame):
    """A source declares, or delivers, frames of more than ``max_frame_pixels`` pixels."""

    def __init__(self, name: str, width: int, height: int, limit: int) -> None:
        self.width, self.height, self.limit = width, height, limit
        super().__init__(
            f"{name}: frames of {width}x{height} ({width * height:,} pixels) exceed the limit of "
            f"{limit:,} pixels (max_frame_pixels)"
        )

    @property
    def reason(self) -> str:
        """The message without the source's name (for a web upload, whose path means nothing)."""
        return str(self).split(": ", 1)[1]


#: Query (and fragment) parameters whose value is a secret, compared after lower-casing and dropping
#: ``-``/``_``/``.``; a name that merely ends with one of :data:`_SECRET_SUFFIXES` counts too
#: (``X-Amz-Signature``, ``client_secret``, ``sessionToken``).
_SECRET_NAMES = frozenset(
    {"user", "username", "pass", "passwd", "password", "pwd", "token", "key", "auth", "secret",
     "signature", "sig", "credential", "credentials", "session", "sessionid", "sid", "jwt", "code",
     "authorization", "bearer", "apikey", "accesstoken", "accesskey"}
)  # fmt: skip
_SECRET_SUFFIXES = ("token", "key", "secret", "password", "passwd", "pwd", "signature", "auth", "credential")
#: ``scheme://`` as RFC 3986 spells a scheme; where a URL starts inside a longer text.
_SCHEME = re.compile(r"(?i)(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*://")
MASK = "***"


def _secret_name(name: str) -> bool:
    key = re.sub(r"[-_.\s]", "", unquote(name)).lower()
    return key in _SECRET_NAMES or key.endswith(_SECRET_SUFFIXES)


def _mask_params(params: str) -> str:
    """``a=1&token=x;b`` with the values of secret names replaced by :data:`MASK`."""
    parts = re.split(r"([&;])", params)
    for i in range(0, len(parts), 2):
        name, sep, _value = parts[i].partition("=")
        if sep and _secret_name(name):
            parts[i] = f"{name}={MASK}"
    return "".join(parts)


def _redact_url(url: str) -> str:
    """One URL (``scheme://`` at its start) with its userinfo and secret parameters masked.

    The userinfo ends at the LAST ``@``: a password may hold ``@``, ``/``, ``#`` or ``?``
    unescaped (people type them so, and FFmpeg's own split is not ours to rely on), and a host
    never holds ``@``, so everything before the last one is masked. That hides the host too in the
    rare URL whose path or query has an ``@``: showing too little is the safe side. What follows
    is split as RFC 3986 does (query after the first ``?``, fragment after the first ``#``) and
    the values of secret parameters in both (``?token=``, ``#access_token=``) are masked.
    """
    scheme, _, rest = url.partition("://")
    if "@" in rest:
        rest = MASK + "@" + rest.rsplit("@", 1)[1]
    rest, hash_, fragment = rest.partition("#")
    rest, mark, query = rest.partition("?")
    return f"{scheme}://{rest}{mark}{_mask_params(query)}{hash_}{_mask_params(fragment)}"


def redact(text: str | int | os.PathLike[str]) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***``; how a source is shown.

    ``rtsp://admin:p@ss/w#rd@cam/stream`` → ``rtsp://***@cam/stream``; query and fragment
    parameters that carry a secret (``?user=…&password=…``, ``api_key=``, ``access_token=``,
    ``X-Amz-Signature=``, case-insensitive) are masked too. The one function that decides what
    of a source may be shown: ``status.source``, logs, every error message and ``slr-predict``'s
    output use it, on a bare source as well as on a whole message. A text that starts with a URL
    is one URL (a password may hold spaces); inside a message a URL ends at the next white space.
    """
    shown = os.fspath(text) if isinstance(text, os.PathLike) else str(text)
    body = shown.lstrip()
    if _SCHEME.match(body):
        return shown[: len(shown) - len(body)] + _redact_url(body)
    out, pos = [], 0
    for match in _SCHEME.finditer(shown):
        if match.start() < pos:  # a URL inside one already masked (?next=http://...)
            continue
        space = re.compile(r"\s").search(shown, match.start())
        end = len(shown) if space is None else space.start()
        out += [shown[pos : match.start()], _redact_url(shown[match.start() : end])]
        pos = end
    out.append(shown[pos:])
    return "".join(out)


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
        #: Frames the file's container declares (None: live, or not declared); see :meth:`truncation`.
        self.expected_frames: int | None = int(count) if 0.0 < count < 1e9 else None
        self._warn_truncated = warn_truncated
        self._decoded_in_pass = 0  # frames decoded since the file (re)started
        self._truncation: str | None = None
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps: float | None = fps if 0.0 < fps < 1000.0 else None
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
        a prefix and then ends as if it were complete. Its container still declares the full frame
        count, so a decode that ends more than :data:`TRUNCATION_SLACK` short of it is reported
        here (``slr-extract`` fails the video, ``slr-predict`` and the daemon warn).
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
        self._last_ts = ts
        return ts, self._index, grabbed_at

    def _file_ended(self) -> None:
        decoded, expected = self._decoded_in_pass, self.expected_frames
        if expected is None or self._truncation is not None:
            return
        if decoded < expected - max(2, math.ceil(TRUNCATION_SLACK * expected)):
            self._truncation = (
                f"video {self.name!r} is incomplete: decoded {decoded} of the {expected} frames "
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
