"""Raw Holistic keypoints → the model's fixed window (SLR_SLOVO SPEC §2), numpy only.

The same function feeds training, export verification and the daemon, so what the model sees
at serving time is bit-for-bit what it saw in training.
"""

from __future__ import annotations

import numpy as np

from edge.layout import MODEL_HAND_ROWS, MODEL_ROWS, NUM_LANDMARKS, has_hands

WINDOW = 128
PAD_INDEX = -1.0


def preprocess(raw: np.ndarray, window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """Turn ``raw [N, 543, 3]`` (NaN = missing) into ``frames [window, 92, 3]`` and ``idx [window]``.

    ``idx`` holds each output frame's (possibly fractional) position relative to the first frame
    with hands; ``-1`` marks padding. Output contains no NaN.
    """
    raw = np.asarray(raw, dtype=np.float32)
    if raw.ndim != 3 or raw.shape[1:] != (NUM_LANDMARKS, 3) or raw.shape[0] == 0:
        raise ValueError(f"expected raw keypoints of shape [N>=1, {NUM_LANDMARKS}, 3], got {raw.shape}")
    n_raw = raw.shape[0]

    keep = np.flatnonzero(has_hands(raw))
    if keep.size == 0:
        keep = np.arange(n_raw)
    idx = (keep - keep[0]).astype(np.float32)

    frames = raw[keep][:, MODEL_ROWS].copy()
    frames[:, MODEL_HAND_ROWS, 0] = 1.0 - frames[:, MODEL_HAND_ROWS, 0]

    if len(frames) < window:
        return _pad_short(frames, idx, window)
    return _pool_long(frames, idx, n_raw, window)


def _pad_short(frames: np.ndarray, idx: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    out = np.zeros((window,) + frames.shape[1:], dtype=np.float32)
    out[: len(frames)] = frames
    out_idx = np.full(window, PAD_INDEX, dtype=np.float32)
    out_idx[: len(idx)] = idx
    return np.nan_to_num(out, nan=0.0), out_idx


def _pool_long(
    frames: np.ndarray, idx: np.ndarray, n_raw: int, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """Resample L >= window frames to exactly ``window`` by repeat, edge padding and group means."""
    if len(frames) < window * window:
        repeat = max(1, (window * window) // n_raw)
        frames = np.repeat(frames, repeat, axis=0)
        idx = np.repeat(idx, repeat, axis=0)
    length = len(frames)
    groups = -(-length // window)  # ceil
    pad = groups * window - length if groups == 1 else (groups * window) % length
    left = pad // 2 + window // 2
    right = pad // 2 + window // 2 + pad % 2
    frames = np.concatenate([np.repeat(frames[:1], left, 0), frames, np.repeat(frames[-1:], right, 0)])
    idx = np.concatenate([np.repeat(idx[:1], left), idx, np.repeat(idx[-1:], right)])

    # NaN-ignoring group mean, accumulated in float64 so the result does not depend on summation
    # order (float32 sums differ by a few 1e-6 between numpy and torch on long clips).
    frames = frames.reshape(window, -1, *frames.shape[1:]).astype(np.float64)
    present = ~np.isnan(frames)
    counts = present.sum(axis=1)
    sums = np.where(present, frames, 0.0).sum(axis=1)
    pooled = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    return pooled.astype(np.float32), idx.reshape(window, -1).mean(axis=1, dtype=np.float64).astype(np.float32)
