"""The capture thread: reads the source and always holds the newest frame for extraction.

Extraction is slower than a camera (about 11 frames/s against 30 on a 2-core board), so frames
must be dropped somewhere. Queueing them would grow memory and latency without bound; instead a
one-slot :class:`LatestFrameBox` keeps only the newest frame and counts every overwritten one as
dropped. A *file* is not real time, though: dropping its frames would only lose data, so for
non-live sources the capture thread waits until extraction has taken the slot (the file is read
at extraction speed and nothing is dropped).

A live source that is missing at start or lost later is retried with exponential backoff
(0.5 s doubling to 10 s) while the state reads "connecting" or "lost"; the daemon keeps running
and recovers by itself. A file ends with state "eof" (or restarts with ``loop``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge.camera.frame import BadFrame, Frame, SourceError
from edge.camera.sources import VideoSource, open_source
from edge.contract.protocol import CameraState
from edge.util.logs import ThrottledLog
from edge.util.redact import redact

log = logging.getLogger(__name__)

BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 10.0


@dataclass(frozen=True)
class CapturedFrame:
    """A frame (its ``captured_at`` starts the latency figures) and the connection it came from."""

    frame: Frame
    connection: int  # increments on every (re)connection, so the daemon can clear stale buffers


class LatestFrameBox:
    """A one-slot mailbox between the capture thread and extraction.

    ``drop_stale=True`` (live sources): ``put`` overwrites an unconsumed frame and counts it in
    :attr:`dropped`. ``drop_stale=False`` (files): ``put`` waits until the slot is empty.
    """

    def __init__(self, drop_stale: bool) -> None:
        self.drop_stale = drop_stale
        self.dropped = 0
        self._cond = threading.Condition()
        self._item: CapturedFrame | None = None
        self._finished = False  # no more frames will come (EOF or shutdown)

    def put(self, item: CapturedFrame) -> bool:
        """Offer a frame; False if the box was finished meanwhile (the frame is discarded)."""
        with self._cond:
            if not self.drop_stale:
                self._cond.wait_for(lambda: self._item is None or self._finished)
            if self._finished:
                return False
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify_all()
            return True

    def get(self, timeout: float) -> CapturedFrame | None:
        """The newest frame, or None after ``timeout`` seconds or once finished and empty."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._finished, timeout)
            item, self._item = self._item, None
            self._cond.notify_all()
            return item

    def finish(self) -> None:
        """No more frames: wake every waiter (frames already in the slot can still be taken)."""
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    @property
    def finished(self) -> bool:
        with self._cond:
            return self._finished and self._item is None


class CaptureThread(threading.Thread):
    """Reads frames into a :class:`LatestFrameBox`; reconnects live sources; stops at EOF or :meth:`stop`.

    Args:
        spec: the source (file path, ``/dev/videoN``, index, URL).
        box: where frames go; its ``drop_stale`` should be :func:`edge.camera.sources.is_live_spec`.
        source: an already opened source (the daemon opens files up front to fail fast), or None.
        loop: restart a file at its end.
        opener: :func:`edge.camera.sources.open_source`; injectable for tests.
    """

    def __init__(
        self,
        spec: str | int,
        box: LatestFrameBox,
        *,
        source: VideoSource | None = None,
        loop: bool = False,
        opener: Callable[..., VideoSource] = open_source,
        backoff_initial_s: float = BACKOFF_INITIAL_S,
        backoff_max_s: float = BACKOFF_MAX_S,
    ) -> None:
        super().__init__(name="capture", daemon=True)
        self.spec = spec
        self.shown = redact(spec)  # what logs say: never a camera password
        self.box = box
        self.loop = loop
        self._opener = opener
        self._source = source
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._stop_event = threading.Event()
        self._throttled = ThrottledLog(log)
        self.state: CameraState = "ok" if source is not None else "connecting"
        self.captured = 0
        self.bad_frames = 0
        self._skipped_seen = 0  # the source's skipped_packets already counted in bad_frames
        self.connection = 1 if source is not None else 0
        self.failed_opens = 0  # attempts that failed (so far, or since the last loss)
        self.fps: float | None = source.fps if source is not None else None

    def stop(self) -> None:
        """Ask the thread to end; wakes it from backoff sleeps and from waiting on the box."""
        self._stop_event.set()
        self.box.finish()

    def run(self) -> None:
        name_native_thread(self.name)
        delay = self._backoff[0]
        try:
            while not self._stop_event.is_set():
                if self._source is None:
                    if not self._connect():
                        self._stop_event.wait(delay)
                        delay = min(delay * 2, self._backoff[1])
                        continue
                    delay = self._backoff[0]
                if not self._read_one():
                    break
        except Exception as exc:  # never let the thread die silently; the daemon sees state "lost"
            log.error("capture thread failed: %s", redact(str(exc)), exc_info=log.isEnabledFor(logging.DEBUG))
            self.state = "lost"
        finally:
            self._close_source()
            self.box.finish()

    def _connect(self) -> bool:
        try:
            self._source = self._opener(self.spec, loop=self.loop)
        except SourceError as exc:
            self.failed_opens += 1
            self._throttled(logging.WARNING, "open", "%s; retrying", exc)
            return False
        self.failed_opens = 0
        self._skipped_seen = 0
        self.fps = self._source.fps
        self.connection += 1
        log.info("source %s %s", self.shown, "reconnected" if self.connection > 1 else "opened")
        self.state = "ok"
        return True

    def _read_one(self) -> bool:
        """Read and offer one frame; False when the thread should end (EOF, box finished)."""
        source = self._source
        assert source is not None
        try:
            return self._offer(source)
        finally:
            self._count_skipped(source)

    def _count_skipped(self, source: VideoSource) -> None:
        """Packets a JPEG stream skipped (not a JPEG) count as bad frames, in status and in the log."""
        skipped = getattr(source, "skipped_packets", 0)
        new, self._skipped_seen = skipped - self._skipped_seen, skipped
        if new > 0:
            self.bad_frames += new
            what = "%d packets from %s were no JPEG: skipped"
            self._throttled(logging.WARNING, "bad", what, new, self.shown)

    def _offer(self, source: VideoSource) -> bool:
        try:
            frame = source.read()
        except BadFrame as exc:  # too large: refused unconverted (JPEG: undecoded), memory stays bounded
            self.bad_frames += 1
            self._throttled(logging.WARNING, "bad", "%s; frame skipped", exc)
            return True
        except SourceError as exc:  # SourceLost: reopen with backoff
            log.warning("%s", exc)
            self.state = "lost"
            self._close_source()
            return True
        if frame is None:
            log.info("end of %s after %d frames", self.shown, self.captured)
            self.state = "eof"
            return False
        # checked unconverted (most frames never need RGB); a JPEG's header was checked by its source
        if not frame.compressed and not _valid_image(frame.pixels()[0]):
            self.bad_frames += 1
            self._throttled(logging.WARNING, "bad", "bad frame %d from %s skipped", frame.index, self.shown)
            return True
        self.captured += 1
        return self.box.put(CapturedFrame(frame, self.connection))

    def _close_source(self) -> None:
        if self._source is not None:
            with contextlib.suppress(Exception):  # closing a broken capture must not mask the original error
                self._source.close()
            self._source = None


def name_native_thread(name: str) -> None:
    """Give the calling OS thread ``name`` (Linux; elsewhere nothing happens).

    Per-thread CPU (``top -H``, ``/proc/PID/task/*/comm``, the idle benchmark) then tells the
    capture from MediaPipe's threads; FFmpeg's decoder threads, started by the capture thread when
    it opens a live source, inherit the name.
    """
    with contextlib.suppress(Exception):  # no libc or no prctl: the name is cosmetic
        import ctypes

        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # 15: PR_SET_NAME


def _valid_image(pixels: object) -> bool:
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
        return False
    return pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.size > 0
