"""Augmentations in raw MediaPipe keypoint space (``[N, 543, 3]``, NaN = missing).

They run before :func:`edge.contract.preprocess.preprocess`, so the model is trained on exactly the
preprocessing it is served with. Every transform keeps NaN as NaN: a landmark MediaPipe did not
detect must never become a made-up coordinate, or the model would learn from values the edge
device can never produce.
"""

from __future__ import annotations

import numpy as np

from edge.contract.layout import LEFT_HAND, RIGHT_HAND
from model_src.train_config import AugmentConfig

_HANDS = (LEFT_HAND, RIGHT_HAND)


def time_warp(raw: np.ndarray, factor: float) -> np.ndarray:
    """Resample the clip to ``max(1, round(N * factor))`` frames (signing faster or slower).

    Linear interpolation between the two neighbouring source frames where both are present;
    otherwise the nearest source frame's value, so an output value is NaN exactly when its
    nearest source value is.
    """
    n = raw.shape[0]
    m = max(1, round(n * factor))
    if n == 1:
        return np.repeat(raw, m, axis=0)
    t = np.linspace(0.0, n - 1, m) if m > 1 else np.zeros(1)
    i0 = np.floor(t).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    w = (t - i0).astype(np.float32)[:, None, None]
    a, b = raw[i0], raw[i1]
    nearest = np.where(w < 0.5, a, b)
    lerp = a * (1.0 - w) + b * w
    return np.where(np.isnan(a) | np.isnan(b), nearest, lerp).astype(np.float32)


def add_noise(raw: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian jitter on every coordinate (tracking noise); NaN + x stays NaN."""
    return (raw + rng.normal(0.0, std, raw.shape)).astype(np.float32)


def _xy_centre(raw: np.ndarray) -> np.ndarray:
    xy = raw[..., :2].reshape(-1, 2)
    present = ~np.isnan(xy).any(axis=1)
    return xy[present].mean(axis=0) if present.any() else np.array([0.5, 0.5], dtype=np.float32)


def scale(raw: np.ndarray, factor: float) -> np.ndarray:
    """Scale x, y (around the clip's x-y centre) and z by ``factor`` (signer nearer or farther)."""
    out = raw.copy()
    centre = _xy_centre(raw)
    out[..., :2] = (raw[..., :2] - centre) * factor + centre
    out[..., 2] = raw[..., 2] * factor
    return out


def rotate(raw: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate x, y around the clip's x-y centre (camera roll)."""
    theta = np.deg2rad(degrees)
    c, s = np.cos(theta), np.sin(theta)
    centre = _xy_centre(raw)
    x = raw[..., 0] - centre[0]
    y = raw[..., 1] - centre[1]
    out = raw.copy()
    out[..., 0] = c * x - s * y + centre[0]
    out[..., 1] = s * x + c * y + centre[1]
    return out


def hand_swap(raw: np.ndarray) -> np.ndarray:
    """Mirror the signer: swap the left- and right-hand rows and map x to 1 - x for every row."""
    out = raw.copy()
    out[:, LEFT_HAND] = raw[:, RIGHT_HAND]
    out[:, RIGHT_HAND] = raw[:, LEFT_HAND]
    out[..., 0] = 1.0 - out[..., 0]
    return out


def frame_dropout(raw: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Remove each frame with probability ``rate`` (dropped camera frames); keeps at least one."""
    keep = rng.random(raw.shape[0]) >= rate
    if not keep.any():
        keep[rng.integers(raw.shape[0])] = True
    return raw[keep]


def landmark_dropout(raw: np.ndarray, rate: float, hand_rate: float, rng: np.random.Generator) -> np.ndarray:
    """Set whole landmarks (all 3 coordinates) to NaN at ``rate``, whole hands per frame at ``hand_rate``.

    Mimics MediaPipe losing single points or a whole hand for a frame.
    """
    out = raw.copy()
    out[rng.random(raw.shape[:2]) < rate] = np.nan
    for part in _HANDS:
        out[rng.random(raw.shape[0]) < hand_rate, part] = np.nan
    return out


class Augmenter:
    """Applies the enabled transforms of an :class:`AugmentConfig`, each with its probability.

    Randomness comes only from the ``rng`` passed per call, so the training loop can derive it
    from (seed, epoch, sample) and a resumed run sees the very same augmented clips.
    """

    def __init__(self, cfg: AugmentConfig) -> None:
        self.cfg = cfg

    def __call__(self, raw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        cfg = self.cfg
        out = np.asarray(raw, dtype=np.float32)
        # One draw per transform, always, so enabling one does not shift the others' randomness.
        fire = rng.random(7)
        if fire[0] < cfg.hand_swap_prob:
            out = hand_swap(out)
        if fire[1] < cfg.time_warp_prob:
            out = time_warp(out, rng.uniform(*cfg.time_warp_range))
        if fire[2] < cfg.frame_drop_prob:
            out = frame_dropout(out, cfg.frame_drop_rate, rng)
        if fire[3] < cfg.scale_prob:
            out = scale(out, rng.uniform(*cfg.scale_range))
        if fire[4] < cfg.rotate_prob:
            out = rotate(out, rng.uniform(-cfg.rotate_degrees, cfg.rotate_degrees))
        if fire[5] < cfg.noise_prob:
            out = add_noise(out, cfg.noise_std, rng)
        if fire[6] < cfg.landmark_drop_prob:
            out = landmark_dropout(out, cfg.landmark_drop_rate, cfg.hand_drop_rate, rng)
        return out
