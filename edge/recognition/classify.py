"""One keypoint sequence → one ranked result: the single path every consumer of the model takes.

The daemon's inference worker (a sliding window of the ring buffer), ``slr-predict`` (a whole
clip) and anything else that classifies keypoints call :func:`classify_window`, so they resample,
preprocess, reject a broken output and rank in exactly the same way: a clip given to
``slr-predict`` and the same keypoints seen by the daemon get the same top-k.

``resample → preprocess → predict → reject non-finite → softmax → top-k``

:func:`classify_clip` wraps it for a whole recorded clip and returns :class:`ClipResult`, the
object ``slr-predict --json`` prints.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from edge.contract.layout import has_hands
from edge.contract.preprocess import preprocess
from edge.contract.protocol import TopKEntry
from edge.keypoints.resample import needs_resampling, resample_window
from edge.recognition.decisions import softmax, top_k

#: Decimals of a probability in every published or printed result.
PROB_DECIMALS = 6


class WindowModel(Protocol):
    """What classification needs of a model (an :class:`~edge.recognition.inference.EdgeModel`, or a fake)."""

    @property
    def labels(self) -> Sequence[str]: ...
    @property
    def window(self) -> int: ...
    @property
    def fps(self) -> float: ...
    @property
    def name(self) -> str: ...
    def predict(self, frames: np.ndarray, idx: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class WindowResult:
    """The model's answer for one keypoint sequence."""

    #: Most probable classes first, with unrounded probabilities (the decision threshold compares these).
    top_k: tuple[TopKEntry, ...]
    #: Timestamps (seconds) of the first and last frame the model saw.
    window_start: float
    window_end: float
    #: Captured frames with hands in the span the model saw. Interpolated frames are not counted:
    #: resampling 11 fps to 30 fps must not triple the evidence.
    hand_frames: int
    #: Whether the sequence was resampled to the model's frame rate first.
    resampled: bool
    #: Time spent in the model itself.
    inference_ms: float

    @property
    def best(self) -> TopKEntry:
        return self.top_k[0]

    def rounded_top_k(self) -> list[TopKEntry]:
        """The top-k as published and printed: probabilities rounded to :data:`PROB_DECIMALS`."""
        return [replace(entry, prob=round(entry.prob, PROB_DECIMALS)) for entry in self.top_k]


def classify_window(
    model: WindowModel,
    raw: np.ndarray,
    ts: np.ndarray,
    *,
    k: int,
    resample: bool = True,
    max_frames: int | None = None,
    hands: np.ndarray | None = None,
) -> WindowResult:
    """Classify ``raw [N, 543, 3]`` captured at times ``ts [N]`` (seconds).

    When ``resample`` is on and the sequence's frame rate differs from ``model.fps``, it is first
    interpolated onto the model's rate; ``max_frames`` then keeps only the most recent grid points
    (the daemon passes its window, so a window keeps covering the newest frames). ``hands`` is
    ``has_hands(raw)`` if the caller has it already. Raises ``ValueError`` if the model's output is
    not finite (a NaN result must never be published as a probability).
    """
    ts = np.asarray(ts, dtype=np.float64)
    if hands is None:
        hands = has_hands(raw)
    hand_frames = int(hands.sum())
    resampled = resample and needs_resampling(ts, model.fps)
    if resampled:
        captured_ts = ts
        raw, ts = resample_window(raw, ts, model.fps, max_frames)
        seen = (captured_ts >= ts[0]) & (captured_ts <= ts[-1])
        hand_frames = int(hands[seen].sum())
        hands = has_hands(raw)
    frames, idx = preprocess(raw, model.window, hands=hands)
    started = time.perf_counter()
    logits = model.predict(frames, idx)
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    probs = softmax(logits)
    if not np.isfinite(probs).all():
        raise ValueError("model produced non-finite logits")
    return WindowResult(
        top_k=tuple(top_k(probs, model.labels, k)),
        window_start=float(ts[0]),
        window_end=float(ts[-1]),
        hand_frames=hand_frames,
        resampled=bool(resampled),
        inference_ms=elapsed_ms,
    )


def window_latencies_ms(model: WindowModel, runs: int, *, warmup: int = 2, seed: int = 0) -> list[float]:
    """Wall time of :func:`classify_window` on a full synthetic window, ``runs`` times (after ``warmup``).

    Every landmark present, so preprocessing does its full work; what the daemon spends per window
    besides waiting (``slr-edge check-model`` prints these to compare engines and precisions).
    """
    from edge.recognition.inference import synthetic_keypoints  # one of the windows every model is probed on

    raw = synthetic_keypoints(model.window, seed)
    ts = np.arange(model.window) / model.fps
    timings = []
    for i in range(warmup + runs):
        started = time.perf_counter()
        classify_window(model, raw, ts, k=1, resample=False)
        if i >= warmup:
            timings.append((time.perf_counter() - started) * 1000.0)
    return timings


@dataclass(frozen=True)
class ClipResult:
    """What ``slr-predict`` reports for one clip (and what a web upload returns)."""

    source: str
    model: str
    frames: int
    hand_frames: int
    clip_fps: float | None
    resampled: bool
    top_k: list[TopKEntry]
    #: Frames the container declares (None when unknown, or for a camera recording).
    declared_frames: int | None = None
    #: False when the file ended well before its declared length (``frames`` were decoded).
    complete: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "model": self.model,
            "frames": self.frames,
            "declared_frames": self.declared_frames,
            "complete": self.complete,
            "hand_frames": self.hand_frames,
            "clip_fps": None if self.clip_fps is None else round(self.clip_fps, 3),
            "resampled": self.resampled,
            "top_k": [{"label": e.label, "index": e.index, "prob": e.prob} for e in self.top_k],
        }


def classify_clip(
    model: WindowModel,
    raw: np.ndarray,
    ts: np.ndarray,
    *,
    k: int,
    source: str,
    clip_fps: float | None = None,
    declared_frames: int | None = None,
    complete: bool = True,
) -> ClipResult:
    """A whole clip as one window (resampled to the model's rate if needed); counts describe the clip.

    ``declared_frames``/``complete`` come from the decoder (``VideoSource.expected_frames`` and
    ``truncation()``): a truncated file is classified on its decoded part and says so.
    """
    hands = has_hands(raw)
    result = classify_window(model, raw, ts, k=k, hands=hands)
    return ClipResult(
        source=source,
        model=model.name,
        frames=len(raw),
        hand_frames=int(hands.sum()),
        clip_fps=clip_fps,
        resampled=result.resampled,
        top_k=result.rounded_top_k(),
        declared_frames=declared_frames,
        complete=complete,
    )
