"""One video frame, kept as cheap as its source allows until used, and the errors a source raises."""

from __future__ import annotations

import dataclasses
import threading
import time

import cv2
import numpy as np


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
                if is_colour_image(pixels):  # anything else is refused by its reader, unconverted
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


def is_colour_image(pixels: object) -> bool:
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
