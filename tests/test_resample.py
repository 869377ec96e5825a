"""Resampling a slow-extraction window back to the model's frame rate.

The reference clip (``case0_raw``: Holistic on the 30 fps sample, 112 frames) is decimated to
10 frames/s the way a slow device would see it. Resampled back to 30 fps it has the original
length and, measured: x/y error median ~1e-4, 95th percentile ~3e-3 (normalised image units;
fast hand motion peaks at ~0.18), hands found in 95 of the original 96 frames.
"""

from __future__ import annotations

import numpy as np
import pytest

from edge.contract.layout import LEFT_HAND, has_hands
from edge.contract.preprocess import preprocess
from edge.keypoints.resample import measured_fps, needs_resampling, resample_window


@pytest.fixture(scope="module")
def clip(tiny_vectors: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    raw = tiny_vectors["case0_raw"].astype(np.float32)
    return raw, np.arange(len(raw), dtype=np.float64) / 30.0 + 1000.0  # any clock origin


def test_decimated_clip_recovers_length_and_landmarks(clip: tuple[np.ndarray, np.ndarray]) -> None:
    raw, ts = clip
    slow_raw, slow_ts = raw[::3], ts[::3]
    assert measured_fps(slow_ts) == pytest.approx(10.0)
    assert needs_resampling(slow_ts, 30.0) and not needs_resampling(ts, 30.0)

    out, out_ts = resample_window(slow_raw, slow_ts, 30.0, max_frames=128)
    assert len(slow_raw) == 38  # without resampling the window is a third as long
    assert out.shape == raw.shape and out.dtype == np.float32
    assert out_ts[-1] == slow_ts[-1] and out_ts[0] == pytest.approx(ts[0])
    np.testing.assert_allclose(np.diff(out_ts), 1 / 30, atol=1e-9)

    both = ~np.isnan(out) & ~np.isnan(raw)
    both[:, :, 2] = False  # z is MediaPipe's noisy depth estimate; compare image-plane x, y
    err = np.abs(out - raw)[both]
    assert np.median(err) < 1e-3
    assert np.percentile(err, 95) < 1e-2
    assert (np.isnan(out) == np.isnan(raw)).mean() > 0.99
    assert abs(int(has_hands(out).sum()) - int(has_hands(raw).sum())) <= 2

    # The preprocessed model input is close to the one of the original 30 fps clip.
    frames_out, idx_out = preprocess(out)
    frames_ref, idx_ref = preprocess(raw)
    assert (idx_out >= 0).sum() == pytest.approx((idx_ref >= 0).sum(), abs=2)
    assert np.median(np.abs(frames_out - frames_ref)) < 1e-3


def test_cap_keeps_most_recent_frames(clip: tuple[np.ndarray, np.ndarray]) -> None:
    raw, ts = clip
    out, out_ts = resample_window(raw[::3], ts[::3], 30.0, max_frames=50)
    assert len(out) == 50
    assert out_ts[-1] == ts[::3][-1]
    np.testing.assert_allclose(out[-1], raw[::3][-1], atol=1e-6)


def test_nan_takes_nearest_neighbour() -> None:
    a = np.zeros((2, 543, 3), np.float32)
    a[1] = 1.0
    a[0, LEFT_HAND] = np.nan  # hand missing in the first frame only
    out, ts = resample_window(a, np.array([0.0, 0.1]), 30.0)
    assert len(out) == 4  # 0, 1/30, 2/30, 3/30
    assert np.isnan(out[0, LEFT_HAND]).all()
    assert np.isnan(out[1, LEFT_HAND]).all()  # 1/3 of the way: nearest is frame 0
    assert (out[2, LEFT_HAND] == 1.0).all()  # 2/3: nearest is frame 1
    np.testing.assert_allclose(out[1, 0], 1 / 3, rtol=1e-5)  # present in both: linear
    assert ts[-1] == 0.1


def test_restarted_clock_uses_latest_run_and_short_inputs() -> None:
    a = np.random.default_rng(0).random((6, 543, 3)).astype(np.float32)
    out, ts = resample_window(a, np.array([5.0, 5.1, 5.2, 0.0, 0.1, 0.2]), 10.0)
    np.testing.assert_allclose(out, a[3:], atol=1e-6)
    np.testing.assert_allclose(ts, [0.0, 0.1, 0.2])
    one, one_ts = resample_window(a[:1], np.array([3.0]), 30.0)
    assert one.shape == (1, 543, 3) and one_ts.tolist() == [3.0]
