"""Rolling buffer of the most recent keypoint frames, preallocated once.

The main loop appends one frame per extraction, forever; allocating per frame would churn the heap
of a process that must run for months, so storage is fixed at start and ``append`` only copies into
it. The count of frames with hands is kept up to date on every append/overwrite, so "does the
window hold hands?" is a constant-time question asked on every stride.
"""

from __future__ import annotations

import time

import numpy as np

from edge.contract.layout import NUM_COORDS, NUM_LANDMARKS, has_hands


class KeypointRingBuffer:
    """The last ``capacity`` frames ``float32 [543, 3]`` with their capture timestamps (seconds)."""

    def __init__(self, capacity: int = 128) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._kp = np.full((capacity, NUM_LANDMARKS, NUM_COORDS), np.nan, dtype=np.float32)
        self._ts = np.zeros(capacity, dtype=np.float64)
        self._hands = np.zeros(capacity, dtype=bool)
        self._next = 0  # slot the next append writes
        self._fill = 0
        self._hand_frames = 0
        self._newest_captured_at = 0.0

    @property
    def fill(self) -> int:
        """Frames currently held (``capacity`` once the buffer has wrapped)."""
        return self._fill

    @property
    def hand_frames(self) -> int:
        """Frames currently held in which a hand was detected."""
        return self._hand_frames

    @property
    def last_has_hands(self) -> bool:
        """Whether the most recently appended frame has hands (False when empty)."""
        return self._fill > 0 and bool(self._hands[(self._next - 1) % self.capacity])

    @property
    def newest_captured_at(self) -> float:
        """Wall-clock time the newest frame was read from its source (0.0 when empty).

        A window's latency runs from here to its prediction being handed to ZeroMQ.
        """
        return self._newest_captured_at

    def append(self, kp: np.ndarray, ts: float, captured_at: float | None = None) -> None:
        """Store one frame (overwriting the oldest when full); ``kp`` must be ``[543, 3]``.

        ``ts`` is the frame's timestamp on the source's clock; ``captured_at`` the wall-clock time
        it was read from the source (default: now).
        """
        if kp.shape != (NUM_LANDMARKS, NUM_COORDS):
            raise ValueError(
                f"expected a keypoint frame of shape ({NUM_LANDMARKS}, {NUM_COORDS}), got {kp.shape}"
            )
        slot = self._next
        if self._fill == self.capacity and self._hands[slot]:
            self._hand_frames -= 1
        self._kp[slot] = kp
        self._ts[slot] = ts
        hands = bool(has_hands(self._kp[slot]))
        self._hands[slot] = hands
        self._hand_frames += int(hands)
        self._next = (slot + 1) % self.capacity
        self._fill = min(self._fill + 1, self.capacity)
        self._newest_captured_at = time.time() if captured_at is None else captured_at

    def window(self, last: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the held frames (or only the ``last`` n) oldest first: ``(raw [N,543,3], ts [N])``."""
        n = self._fill if last is None else max(0, min(last, self._fill))
        start = (self._next - n) % self.capacity
        if start + n <= self.capacity:
            return self._kp[start : start + n].copy(), self._ts[start : start + n].copy()
        order = (np.arange(n) + start) % self.capacity
        return self._kp[order], self._ts[order]

    def clear(self) -> None:
        """Forget every frame (e.g. after the camera reconnects, so old and new scenes never mix)."""
        self._kp.fill(np.nan)
        self._hands.fill(False)
        self._next = self._fill = self._hand_frames = 0
        self._newest_captured_at = 0.0
