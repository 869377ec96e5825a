"""Keypoint extraction as the daemon runs it: one bad frame is counted and logged, never fatal.

The daemon's main loop must survive whatever a frame or MediaPipe does (the failure policy in
:mod:`edge.daemon.daemon`), so every extraction goes through :meth:`Extraction.extract`, which
turns a failure into ``None``, a count in ``status`` (``errors.extraction``) and a rate-limited
warning. :meth:`Extraction.forget` is the idle cycle's wake-up reset of MediaPipe's tracking.
"""

from __future__ import annotations

import logging

import numpy as np

from edge.camera.frame import Frame
from edge.keypoints.holistic import Extractor
from edge.util.logs import ThrottledLog

log = logging.getLogger(__name__)


class Extraction:
    """An :class:`Extractor` that counts and logs its failures instead of raising them."""

    def __init__(self, extractor: Extractor) -> None:
        self.extractor = extractor
        #: Frames whose extraction failed (their pixels or MediaPipe); published in ``status``.
        self.errors = 0
        self._throttled = ThrottledLog(log)
        self._blank: np.ndarray | None = None

    def extract(self, frame: Frame) -> np.ndarray | None:
        """The frame's keypoints, or None (counted and logged) if it could not be extracted."""
        try:
            return self.extractor.extract(frame.rgb)
        except Exception as exc:
            self.errors += 1
            self._throttled(logging.WARNING, "extract", "extraction failed on frame %d: %s", frame.index, exc)
            return None

    def forget(self, shape: tuple[int, ...]) -> None:
        """Clear MediaPipe's tracking with a blank frame of ``shape`` (it detects nothing).

        A wake-up's sample was seen out of order; the replay that follows must not track from it.
        """
        if self._blank is None or self._blank.shape != shape:
            self._blank = np.zeros(shape, np.uint8)
        try:
            self.extractor.extract(self._blank)
        except Exception as exc:
            self._throttled(logging.WARNING, "extract", "extraction failed on a blank frame: %s", exc)
