"""Raw Holistic keypoints → the model's fixed window (docs/MODEL.md §3), numpy only.

The same function feeds training, export verification and the daemon, so what the model sees
at serving time is bit-for-bit what it saw in training.
"""

from __future__ import annotations

import numpy as np

from edge.contract.layout import MODEL_HAND_ROWS, MODEL_ROWS, NUM_LANDMARKS, has_hands

WINDOW = 128
PAD_INDEX = -1.0


def preprocess(
    raw: np.ndarray, window: int = WINDOW, hands: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Turn ``raw [N, 543, 3]`` (NaN = missing) into ``frames [window, 92, 3]`` and ``idx [window]``.

    ``idx`` holds each output frame's (possibly fractional) position relative to the first frame
    with hands; ``-1`` marks padding. Output contains no NaN. ``hands`` is ``has_hands(raw)`` when
    the caller has it already (the classifier counts hand frames too): computed once per window.
    """
    raw = np.asarray(raw, dtype=np.float32)
    if raw.ndim != 3 or raw.shape[1:] != (NUM_LANDMARKS, 3) or raw.shape[0] == 0:
        raise ValueError(f"expected raw keypoints of shape [N>=1, {NUM_LANDMARKS}, 3], got {raw.shape}")
    n_raw = raw.shape[0]

    if hands is None:
        hands = has_hands(raw)
    elif hands.shape != (n_raw,):
        raise ValueError(f"hands must be [{n_raw}], got {hands.shape}")
    keep = np.flatnonzero(hands)
    if keep.size == 0:
        keep = np.arange(n_raw)
    idx = (keep - keep[0]).astype(np.float32)

    frames = raw[keep][:, MODEL_ROWS].copy()
    frames[:, MODEL_HAND_ROWS, 0] = 1.0 - frames[:, MODEL_HAND_ROWS, 0]

    if len(frames) < window:
        return _pad_short(frames, idx, window)
    return _pool_long(frames, idx, n_raw, window)


def _pad_short(frames: np.ndarray, idx: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    out = np.zeros((window, *frames.shape[1:]), dtype=np.float32)
    out[: len(frames)] = frames
    out_idx = np.full(window, PAD_INDEX, dtype=np.float32)
    out_idx[: len(idx)] = idx
    return np.nan_to_num(out, nan=0.0), out_idx


def _pool_long(frames: np.ndarray, idx: np.ndarray, n_raw: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Resample L >= window frames to exactly ``window``: repeat, edge padding, NaN-ignoring group means.

    The spec's recipe materialises up to 128² repeated frames. That virtual sequence is just a
    run of copies per kept frame, so every group sum is a difference of two prefix sums over the
    L kept frames: the same numbers without the copies (~100x faster). Sums are accumulated in
    float64 so the result does not depend on summation order.
    """
    length = len(frames)
    repeat = max(1, (window * window) // n_raw) if length < window * window else 1
    virtual = length * repeat
    groups = -(-virtual // window)  # ceil
    pad = groups * window - virtual if groups == 1 else (groups * window) % virtual
    left = pad // 2 + window // 2
    right = pad // 2 + window // 2 + pad % 2

    run = np.full(length, repeat, dtype=np.int64)  # copies of each kept frame in the sequence
    run[0] += left
    run[-1] += right
    start = np.concatenate([[0], np.cumsum(run)[:-1]])
    total = int(start[-1] + run[-1])
    bounds = np.arange(window + 1) * (total // window)
    frame_at = np.searchsorted(start, bounds, side="right") - 1
    offset = (bounds - start[frame_at]).astype(np.float64)

    def group_sums(values: np.ndarray) -> np.ndarray:
        """Sum of ``values`` (per kept frame, float64) over each group of the virtual sequence."""
        prefix = np.concatenate([np.zeros((1, *values.shape[1:])), np.cumsum(values * _col(run), axis=0)])
        at_bounds = prefix[frame_at] + _col(offset) * values[frame_at]
        return at_bounds[1:] - at_bounds[:-1]

    flat = frames.reshape(length, -1).astype(np.float64)
    present = ~np.isnan(flat)
    sums = group_sums(np.where(present, flat, 0.0))
    counts = np.rint(group_sums(present.astype(np.float64)))
    pooled = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    pooled_idx = group_sums(idx.astype(np.float64)[:, None])[:, 0] / (total // window)
    return pooled.reshape(window, *frames.shape[1:]).astype(np.float32), pooled_idx.astype(np.float32)


def _col(vector: np.ndarray) -> np.ndarray:
    return vector.reshape(-1, 1)
