"""Turning per-window probabilities into events: pure logic, no I/O, no clocks of its own.

A sliding window sees the same sign many times (every ``stride`` frames), and a single window can
flicker to a wrong class. ``SignDecider`` asks for ``consecutive`` agreeing windows above the
threshold and then reports the sign once, so subscribers get one ``sign`` event per occurrence
rather than a stream of duplicates. ``IdleTracker`` lets the daemon stop inferring when nobody is
signing, which is most of the time for a device that runs all day.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from edge.contract.model_contract import NO_SIGN_LABEL
from edge.contract.protocol import TopKEntry


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def top_k(probs: np.ndarray, labels: Sequence[str], k: int) -> list[TopKEntry]:
    """The ``k`` most probable classes, most probable first (ties: lower index first), unrounded."""
    probs = np.asarray(probs, dtype=np.float64)
    k = max(1, min(k, probs.shape[-1]))
    order = np.argsort(-probs, kind="stable")[:k]
    return [TopKEntry(labels[i], int(i), float(probs[i])) for i in order]


@dataclass(frozen=True)
class Decision:
    """A sign that held the top place for enough windows; ``windows`` is how many agreed."""

    label: str
    index: int
    prob: float
    windows: int
    window_start: float  # start of the first agreeing window (capture timestamp, seconds)
    window_end: float  # end of the window that completed the streak


class SignDecider:
    """Emit a decision when one class stays on top with ``prob >= threshold`` for ``consecutive`` windows.

    Emitted once per occurrence: while the same class persists nothing more is emitted; a new
    decision needs the top class to change or drop below the threshold first. The no-sign class
    never produces a decision (but does break a streak); a window without hands resets it (:meth:`reset`).
    """

    def __init__(
        self, threshold: float, consecutive: int, no_sign_labels: Collection[str] = frozenset({NO_SIGN_LABEL})
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if consecutive < 1:
            raise ValueError(f"consecutive must be >= 1, got {consecutive}")
        self.threshold = threshold
        self.consecutive = consecutive
        self.no_sign_labels = frozenset(no_sign_labels)
        self._index: int | None = None
        self._streak = 0
        self._streak_start = 0.0

    def reset(self) -> None:
        """Forget the current streak (no hands, idle, camera reconnect)."""
        self._index = None
        self._streak = 0

    def update(self, best: TopKEntry, window_start: float = 0.0, window_end: float = 0.0) -> Decision | None:
        """Feed one window's top class; returns a :class:`Decision` on the window that completes a streak.

        Windows without hands never reach inference: the daemon calls :meth:`reset` for them instead.
        """
        if best.prob < self.threshold:
            self.reset()
            return None
        if best.index == self._index:
            self._streak += 1
        else:
            self._index, self._streak, self._streak_start = best.index, 1, window_start
        if self._streak != self.consecutive or best.label in self.no_sign_labels:
            return None
        return Decision(best.label, best.index, best.prob, self._streak, self._streak_start, window_end)


class IdleTracker:
    """Idle once ``idle_after_s`` seconds pass without a frame with hands; busy again on the next one."""

    def __init__(self, idle_after_s: float) -> None:
        self.idle_after_s = idle_after_s
        self._last_hands: float | None = None
        self.idle = False

    def update(self, has_hands: bool, now: float) -> bool:
        """Record one extracted frame at time ``now`` (seconds); returns whether the pipeline is idle."""
        # ``now < last`` only when a clock restarted (a looped file without offset): start afresh.
        if has_hands or self._last_hands is None or now < self._last_hands:
            self._last_hands = now
        self.idle = not has_hands and now - self._last_hands >= self.idle_after_s
        return self.idle
