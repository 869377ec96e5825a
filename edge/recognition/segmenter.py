"""Cut the keypoint stream into signing episodes, the unit the model was trained on.

SLR_SLOVO learnt from isolated-sign clips: hands rise, one sign, hands fall. A signer who pauses
between signs gives the same unit live: an **episode** starts at the first frame with a hand
(after at least ``gap_s`` without hands) and ends once no hand has been seen for ``gap_s``. Its
frames from the first to the last frame with a hand are then classified as one clip, exactly as
``slr-predict`` classifies a file, so the device and ``slr-predict`` agree on the same signing.

Memory is bounded and allocated once, independently of the sliding-window ring buffer: room for
``max_segment_s`` at twice the model's frame rate. An episode that reaches ``max_segment_s`` (or
fills that room first) is handed out as *cut* and the next one starts at the next frame with a
hand. Episodes shorter than ``min_frames`` are dropped and counted (a hand flickering into view
is not a sign).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edge.contract.layout import NUM_COORDS, NUM_LANDMARKS

#: Frames reserved per second of ``max_segment_s``, relative to the model's rate: extraction may
#: outrun the model's fps (a fast machine on a 60 fps camera); beyond that the segment is cut early.
RATE_HEADROOM = 2.0


@dataclass(frozen=True)
class Episode:
    """One finished episode: its frames from the first to the last frame with a hand."""

    raw: np.ndarray  #: float32 [N, 543, 3]
    ts: np.ndarray  #: capture timestamps [N], seconds
    hands: np.ndarray  #: bool [N]: frames with a hand
    cut: bool  #: ended by ``max_segment_s`` rather than by a gap or the end of the input
    ended_at: float  #: wall-clock time (unix seconds) the end was seen, for the latency figure


def capacity_for(max_segment_s: float, fps: float) -> int:
    """Frames reserved for a maximal segment at ``fps`` (with :data:`RATE_HEADROOM`)."""
    return max(2, math.ceil(max_segment_s * fps * RATE_HEADROOM) + 1)


class SegmentSettings(Protocol):
    """The settings that shape episodes (:class:`edge.daemon.config.DaemonConfig` has them)."""

    @property
    def gap_s(self) -> float: ...
    @property
    def max_segment_s(self) -> float: ...
    @property
    def min_segment_frames(self) -> int: ...


class Segmenter:
    """Fed one extracted frame at a time by the daemon's main loop; returns each episode as it ends."""

    def __init__(self, gap_s: float, max_segment_s: float, min_frames: int, capacity: int) -> None:
        if gap_s <= 0 or max_segment_s <= 0 or min_frames < 1 or capacity < 2:
            raise ValueError("gap_s and max_segment_s must be > 0, min_frames >= 1, capacity >= 2")
        self.gap_s = gap_s
        self.max_segment_s = max_segment_s
        self.min_frames = min_frames
        self.capacity = capacity
        self._kp = np.empty((capacity, NUM_LANDMARKS, NUM_COORDS), dtype=np.float32)
        self._ts = np.zeros(capacity, dtype=np.float64)
        self._hands = np.zeros(capacity, dtype=bool)
        self._n = 0  # frames held in the open episode (0: none open)
        self._last_hand = -1  # index of the open episode's last frame with a hand
        #: Episodes dropped for being shorter than ``min_frames``.
        self.short = 0

    @classmethod
    def from_settings(cls, settings: SegmentSettings, fps: float) -> Segmenter:
        """The segmenter for a model of frame rate ``fps``: the daemon and ``slr-predict --segments``
        both build theirs here, so the same settings cut the same episodes."""
        return cls(
            settings.gap_s,
            settings.max_segment_s,
            settings.min_segment_frames,
            capacity_for(settings.max_segment_s, fps),
        )

    @property
    def open(self) -> bool:
        """Whether an episode is in progress."""
        return self._n > 0

    @property
    def nbytes(self) -> int:
        """Memory reserved for a maximal segment."""
        return self._kp.nbytes + self._ts.nbytes + self._hands.nbytes

    def push(self, kp: np.ndarray, ts: float, hands: bool, now: float) -> Episode | None:
        """Add one frame (``now``: wall clock when it reached extraction); returns an episode that ended."""
        ended = None
        if self._n:
            if not hands and ts - self._ts[self._last_hand] >= self.gap_s:
                return self._close(cut=False, now=now)
            if ts - self._ts[0] >= self.max_segment_s or self._n == self.capacity:
                ended = self._close(cut=True, now=now)
        if self._n == 0 and not hands:
            return ended
        slot = self._n
        self._kp[slot] = kp
        self._ts[slot] = ts
        self._hands[slot] = hands
        if hands:
            self._last_hand = slot
        self._n += 1
        return ended

    def flush(self, now: float) -> Episode | None:
        """End the open episode now (end of the input, camera reconnected); None if none is worth keeping."""
        return self._close(cut=False, now=now) if self._n else None

    def _close(self, *, cut: bool, now: float) -> Episode | None:
        n = self._last_hand + 1
        self._n, self._last_hand = 0, -1
        if n < self.min_frames:
            self.short += 1
            return None
        return Episode(self._kp[:n].copy(), self._ts[:n].copy(), self._hands[:n].copy(), cut, now)
