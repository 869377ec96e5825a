"""Check an exported graph against its source model (Optimum-style "validate outputs").

Parity is measured on windows built by the very preprocessing the daemon uses
(:func:`edge.contract.preprocess.preprocess`) from synthetic raw keypoints, covering the paths that
behave differently: short clips (padding), long clips (pooling), a single frame, frames without
hands, missing groups, and an all-padding window, fed one at a time and batched.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
import torch

from edge.contract.layout import LEFT_HAND, NUM_LANDMARKS, RIGHT_HAND
from edge.contract.model_contract import INPUT_FRAME_IDX, INPUT_FRAMES
from edge.contract.preprocess import PAD_INDEX, WINDOW, preprocess

#: Max |logit difference| accepted between ONNX Runtime (fp32) and PyTorch.
FP32_TOLERANCE = 1e-4
#: Below this int8-vs-fp32 top-1 agreement, export warns loudly.
INT8_MIN_AGREEMENT = 0.99


@dataclass
class Windows:
    """A stack of model inputs: ``frames [N, window, 92, 3]``, ``idx [N, window]``."""

    frames: np.ndarray
    idx: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)

    def __add__(self, other: Windows) -> Windows:
        return Windows(np.concatenate([self.frames, other.frames]), np.concatenate([self.idx, other.idx]))


@dataclass
class ParityResult:
    """Outcome of :func:`check_parity`."""

    max_abs_diff: float
    windows: int
    tolerance: float
    #: Windows where PyTorch itself gives NaN/inf (ONNX must then give the same non-finite values).
    nonfinite_windows: int = 0

    @property
    def passed(self) -> bool:
        return bool(self.max_abs_diff <= self.tolerance)


def _synthetic_clip(rng: np.random.Generator, frames: int) -> np.ndarray:
    """Raw ``[frames, 543, 3]`` keypoints: a body that drifts smoothly, with detection dropouts."""
    base = rng.uniform(0.2, 0.8, size=(1, NUM_LANDMARKS, 3)).astype(np.float32)
    base[..., 2] *= 0.1
    drift = np.cumsum(rng.normal(0.0, 0.01, size=(frames, 1, 3)), axis=0).astype(np.float32)
    jitter = rng.normal(0.0, 0.02, size=(frames, NUM_LANDMARKS, 3)).astype(np.float32)
    raw = base + drift + jitter
    for part in (LEFT_HAND, RIGHT_HAND):  # each hand undetected in a random subset of frames
        raw[rng.random(frames) < rng.uniform(0.0, 0.6), part] = np.nan
    if rng.random() < 0.2:  # sometimes no face at all
        raw[:, :468] = np.nan
    return raw


def synthetic_windows(count: int, *, seed: int = 0, window: int = WINDOW) -> Windows:
    """``count`` (>= 5) preprocessed windows; the first ones are the edge cases (module docstring)."""
    if count < 5:
        raise ValueError(f"need at least 5 windows to cover the edge cases, got {count}")
    rng = np.random.default_rng(seed)
    frames_out, idx_out = [], []

    def add(raw: np.ndarray) -> None:
        frames, idx = preprocess(raw, window)
        frames_out.append(frames)
        idx_out.append(idx)

    add(_synthetic_clip(rng, 1))  # single frame
    no_hands = _synthetic_clip(rng, 40)
    no_hands[:, LEFT_HAND] = np.nan
    no_hands[:, RIGHT_HAND] = np.nan
    add(no_hands)  # no frame has hands: all kept, indices 0..N-1
    add(_synthetic_clip(rng, window))  # exactly full
    add(_synthetic_clip(rng, 3 * window + 7))  # long: repeat/pad/pool path
    while len(frames_out) < count - 1:
        # Mostly short clips (padding path); every 16th long (pooling path, ~20x costlier to build).
        long = len(frames_out) % 16 == 15
        length = int(rng.integers(window, 3 * window)) if long else int(rng.integers(2, window))
        add(_synthetic_clip(rng, length))
    # All padding: what a window looks like before any frame arrived (never produced by preprocess).
    frames_out.append(np.zeros((window, len(frames_out[0][0]), 3), dtype=np.float32))
    idx_out.append(np.full(window, PAD_INDEX, dtype=np.float32))
    return Windows(np.stack(frames_out[:count]), np.stack(idx_out[:count]))


def run_onnx(session: ort.InferenceSession, windows: Windows, batch: int = 1) -> np.ndarray:
    """Logits ``[N, classes]``, computed ``batch`` windows per call."""
    out = []
    for start in range(0, len(windows), batch):
        feed = {
            INPUT_FRAMES: windows.frames[start : start + batch],
            INPUT_FRAME_IDX: windows.idx[start : start + batch],
        }
        out.append(session.run(None, feed)[0])
    return np.concatenate(out)


def run_torch(model: torch.nn.Module, windows: Windows, batch: int = 8) -> np.ndarray:
    """Logits of the PyTorch model, in eval/inference mode."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(windows), batch):
            frames = torch.from_numpy(windows.frames[start : start + batch])
            idx = torch.from_numpy(windows.idx[start : start + batch])
            out.append(model(frames, idx).float().numpy())
    return np.concatenate(out)


def check_parity(
    session: ort.InferenceSession,
    model: torch.nn.Module,
    windows: Windows,
    *,
    tolerance: float = FP32_TOLERANCE,
    batches: Sequence[int] = (1, 3),
) -> ParityResult:
    """Max |ORT − PyTorch| over all windows, run one by one and in batches (dynamic batch axis)."""
    reference = run_torch(model, windows).astype(np.float64)
    worst = 0.0
    for batch in batches:
        got = run_onnx(session, windows, batch).astype(np.float64)
        if got.shape != reference.shape:
            return ParityResult(np.inf, len(windows), tolerance)
        same_nonfinite = (np.isnan(got) & np.isnan(reference)) | (np.isinf(got) & (got == reference))
        diff = np.where(same_nonfinite, 0.0, np.abs(got - reference))
        worst = max(worst, float(np.nan_to_num(diff, nan=np.inf).max()))
    nonfinite = int((~np.isfinite(reference)).any(axis=1).sum())
    return ParityResult(worst, len(windows), tolerance, nonfinite_windows=nonfinite)


def top1_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Fraction of rows whose argmax is the same."""
    return float(np.mean(reference.argmax(axis=-1) == candidate.argmax(axis=-1)))


def measure_latency(
    session: ort.InferenceSession, windows: Windows, *, runs: int = 50, warmup: int = 5
) -> tuple[float, float]:
    """(p50, p95) milliseconds of single-window inference, cycling through ``windows``."""
    feeds = [
        {INPUT_FRAMES: windows.frames[i : i + 1], INPUT_FRAME_IDX: windows.idx[i : i + 1]}
        for i in range(len(windows))
    ]
    for i in range(warmup):
        session.run(None, feeds[i % len(feeds)])
    times = []
    for i in range(runs):
        start = time.perf_counter()
        session.run(None, feeds[i % len(feeds)])
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))
