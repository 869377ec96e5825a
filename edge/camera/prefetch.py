"""Decode ahead of MediaPipe: a file's frames come from a thread while the caller extracts.

One helper for every whole-file reader (:mod:`edge.clips.keypoints`: slr-predict, slr-extract, uploads),
so they cost the same per frame and neither pays decoding on top of extraction.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Generator, Iterable

from edge.camera.frame import BadFrame, Frame

#: Frames decoded ahead of MediaPipe (720p RGB: 2.7 MB each).
PREFETCH_FRAMES = 4
_END = object()


def prefetched(frames: Iterable[Frame], depth: int = PREFETCH_FRAMES) -> Generator[Frame, None, None]:
    """Iterate ``frames`` while a thread decodes up to ``depth`` frames ahead.

    OpenCV and MediaPipe both release the GIL, so decoding (about a quarter of MediaPipe's time
    for 720p H.264) overlaps extraction instead of adding to it. Exceptions from the decoding
    side are re-raised here; stopping early (``close()``, an exception in the consumer) stops
    the thread. Wrap the generator in :func:`contextlib.closing` so that happens at once.
    """
    slots: queue.Queue[object] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for frame in frames:
                if frame.compressed:  # an MJPEG stream's frame: decode it here too, ahead
                    with contextlib.suppress(BadFrame):  # the consumer's .rgb raises it in order
                        frame.pixels()
                if not put(frame):
                    return
            put(_END)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)

    thread = threading.Thread(target=produce, name="slovo-decode", daemon=True)
    thread.start()
    try:
        while (item := slots.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, Frame)  # the queue holds frames, _END or an exception
            yield item
    finally:
        stop.set()
        thread.join()
