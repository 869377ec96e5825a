"""Resample a buffered keypoint window to the model's frame rate using capture timestamps.

On a slow device extraction runs below camera rate (about 11 frames/s on a 2-core board), so a
sign that took 60 frames in the 30 fps training data would occupy 22 frames of the buffer and look
three times faster to the model. Interpolating the window onto a uniform grid at the model's
``slr.fps`` restores the duration the model was trained on before :func:`edge.contract.preprocess.preprocess`.

Missing values (NaN): each output value is the linear interpolation of its two neighbouring input
frames when both are present; when either is missing it takes the value of the *nearest* neighbour
(which may itself be NaN). So whether a hand is present in an output frame follows the nearest
input frame, and the fraction of frames with hands is preserved, instead of every frame next to
a gap being lost (as "NaN if either neighbour is NaN" would do: at 11 fps that turns one
detection gap into three missing frames at 30 fps).
"""

from __future__ import annotations

import numpy as np

#: Most frames one resampling may produce (20 minutes at 30 fps, ~230 MB of keypoints): a clip
#: whose timestamps span days (a damaged GIF's delays) is refused instead of exhausting memory.
MAX_RESAMPLED_FRAMES = 36_000

#: A window already this close to the target rate (relative) is passed through unchanged.
RATE_TOLERANCE = 0.05


def measured_fps(ts: np.ndarray) -> float | None:
    """Frame rate implied by capture timestamps ``ts`` (mean interval), or None if undefined.

    The mean, not the median: a 30 fps GIF stores delays of 3, 3, 4 centiseconds, whose median
    says 33.3 fps while the frames really come 30 times a second; a camera that drops frames
    delivers its mean rate too.
    """
    if len(ts) < 2:
        return None
    steps = np.diff(np.asarray(ts, dtype=np.float64))
    steps = steps[steps > 0]
    if steps.size == 0:
        return None
    return float(1.0 / np.mean(steps))


def needs_resampling(ts: np.ndarray, target_fps: float, tolerance: float = RATE_TOLERANCE) -> bool:
    """True if the window's frame rate differs from ``target_fps`` by more than ``tolerance``."""
    fps = measured_fps(ts)
    return fps is not None and abs(fps - target_fps) > tolerance * target_fps


def _monotonic_tail(ts: np.ndarray) -> int:
    """Index where the last strictly increasing run of ``ts`` starts (a looped file restarts at 0)."""
    drops = np.flatnonzero(np.diff(ts) <= 0)
    return int(drops[-1]) + 1 if drops.size else 0


def resample_window(
    raw: np.ndarray, ts: np.ndarray, target_fps: float, max_frames: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate ``raw [N, 543, 3]`` at times ``ts [N]`` onto a uniform ``target_fps`` grid.

    The grid ends exactly at the newest frame's timestamp and steps back by ``1/target_fps`` to the
    oldest one, so it covers ``[ts[0], ts[-1]]``; with ``max_frames`` only the most recent
    ``max_frames`` grid points are kept (the model's window). Returns ``(raw', ts')``.
    """
    raw = np.asarray(raw, dtype=np.float32)
    ts = np.asarray(ts, dtype=np.float64)
    if raw.ndim != 3 or len(raw) != len(ts):
        raise ValueError(f"raw {raw.shape} and ts {ts.shape} must be [N, 543, 3] and [N]")
    if target_fps <= 0:
        raise ValueError(f"target_fps must be > 0, got {target_fps}")
    start = _monotonic_tail(ts) if len(ts) > 1 else 0
    raw, ts = raw[start:], ts[start:]
    if len(ts) < 2:
        return raw.copy(), ts.copy()

    step = 1.0 / target_fps
    count = int(np.floor((ts[-1] - ts[0]) / step + 1e-6)) + 1
    if max_frames is not None:
        count = min(count, max_frames)
    if count > MAX_RESAMPLED_FRAMES:
        raise ValueError(
            f"the clip spans {ts[-1] - ts[0]:.0f} s: {count} frames at {target_fps:g} fps is more than "
            f"{MAX_RESAMPLED_FRAMES} (damaged timestamps?)"
        )
    grid = ts[-1] - step * np.arange(count - 1, -1, -1, dtype=np.float64)
    grid[0] = max(grid[0], ts[0])  # guard against rounding just below the first frame

    right = np.clip(np.searchsorted(ts, grid, side="left"), 1, len(ts) - 1)
    left = right - 1
    weight = ((grid - ts[left]) / (ts[right] - ts[left])).astype(np.float32)
    weight = np.clip(weight, 0.0, 1.0)[:, None, None]
    a, b = raw[left], raw[right]
    linear = a + (b - a) * weight
    nearest = np.where(weight < 0.5, a, b)
    out = np.where(np.isnan(a) | np.isnan(b), nearest, linear)
    return out.astype(np.float32, copy=False), grid
