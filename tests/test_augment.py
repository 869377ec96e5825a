"""Raw-keypoint augmentations: shapes, NaN-ness (missing stays missing), hand swap semantics."""

from __future__ import annotations

import numpy as np
import pytest

from edge.contract.layout import FACE, LEFT_HAND, NUM_LANDMARKS, POSE, RIGHT_HAND
from edge.contract.preprocess import preprocess
from model_src.augment import (
    Augmenter,
    add_noise,
    frame_dropout,
    hand_swap,
    landmark_dropout,
    rotate,
    scale,
    time_warp,
)
from model_src.synthetic import make_clip
from model_src.train_config import AugmentConfig


@pytest.fixture
def raw() -> np.ndarray:
    """A synthetic clip with both hands in some frames and NaN hands in others."""
    clip = make_clip(1, 10, np.random.default_rng(3), length=(40, 40))
    assert np.isnan(clip[:, RIGHT_HAND]).all(axis=(1, 2)).any(), "fixture must contain frames without hands"
    return clip


@pytest.mark.parametrize(
    "transform",
    [lambda r, g: add_noise(r, 0.01, g), lambda r, g: scale(r, 1.2), lambda r, g: rotate(r, 20.0)],
    ids=["noise", "scale", "rotate"],
)
def test_pointwise_transforms_keep_shape_and_nan_mask(raw: np.ndarray, transform) -> None:
    out = transform(raw, np.random.default_rng(0))
    assert out.dtype == np.float32
    assert out.shape == raw.shape
    np.testing.assert_array_equal(np.isnan(out), np.isnan(raw))
    assert not np.allclose(np.nan_to_num(out), np.nan_to_num(raw))


def test_hand_swap_swaps_hands_and_mirrors_x(raw: np.ndarray) -> None:
    out = hand_swap(raw)
    assert out.shape == raw.shape
    np.testing.assert_array_equal(np.isnan(out[:, LEFT_HAND]), np.isnan(raw[:, RIGHT_HAND]))
    np.testing.assert_array_equal(np.isnan(out[:, RIGHT_HAND]), np.isnan(raw[:, LEFT_HAND]))
    np.testing.assert_allclose(out[:, LEFT_HAND, 0], 1.0 - raw[:, RIGHT_HAND, 0])
    np.testing.assert_allclose(out[:, RIGHT_HAND, 0], 1.0 - raw[:, LEFT_HAND, 0])
    np.testing.assert_array_equal(out[:, LEFT_HAND, 1:], raw[:, RIGHT_HAND, 1:])
    np.testing.assert_array_equal(out[:, RIGHT_HAND, 1:], raw[:, LEFT_HAND, 1:])
    for part in (FACE, POSE):  # everything else mirrored in place
        np.testing.assert_allclose(out[:, part, 0], 1.0 - raw[:, part, 0])
        np.testing.assert_array_equal(out[:, part, 1:], raw[:, part, 1:])
    np.testing.assert_allclose(hand_swap(out), raw, atol=1e-6)  # an involution


def test_scale_and_rotate_preserve_distances_ratio(raw: np.ndarray) -> None:
    """Scaling multiplies all x-y distances by the factor; rotation keeps them."""
    a, b = raw[5, RIGHT_HAND.start, :2], raw[5, FACE.start, :2]
    for out, factor in ((scale(raw, 1.5), 1.5), (rotate(raw, 33.0), 1.0)):
        d = np.linalg.norm(out[5, RIGHT_HAND.start, :2] - out[5, FACE.start, :2])
        assert d == pytest.approx(factor * np.linalg.norm(a - b), rel=1e-4)


@pytest.mark.parametrize("factor", [0.5, 0.77, 1.0, 1.6])
def test_time_warp_length_values_and_missing_frames(raw: np.ndarray, factor: float) -> None:
    out = time_warp(raw, factor)
    n, m = len(raw), round(len(raw) * factor)
    assert out.shape == (m, NUM_LANDMARKS, 3)
    t = np.linspace(0, n - 1, m)
    nearest = np.clip(np.floor(t + 0.5).astype(int), 0, n - 1)
    # An output value is missing exactly when its nearest source value is.
    np.testing.assert_array_equal(np.isnan(out), np.isnan(raw[nearest]))
    np.testing.assert_array_equal(out[0], raw[0])
    np.testing.assert_array_equal(out[-1], raw[-1])
    if factor == 1.0:
        np.testing.assert_array_equal(out, raw)


def test_frame_dropout_removes_whole_frames(raw: np.ndarray) -> None:
    out = frame_dropout(raw, 0.5, np.random.default_rng(1))
    assert 1 <= len(out) < len(raw)
    assert out.shape[1:] == raw.shape[1:]
    # Every kept frame is an original frame, in order.
    rows = [next(i for i in range(len(raw)) if np.array_equal(f, raw[i], equal_nan=True)) for f in out]
    assert rows == sorted(rows)
    assert len(frame_dropout(raw, 1.0, np.random.default_rng(1))) == 1


def test_landmark_dropout_only_adds_missing_whole_landmarks(raw: np.ndarray) -> None:
    out = landmark_dropout(raw, 0.2, 0.3, np.random.default_rng(2))
    was, now = np.isnan(raw), np.isnan(out)
    assert (now | ~was).all()  # missing stays missing
    assert now.sum() > was.sum()
    np.testing.assert_array_equal(now.all(axis=-1), now.any(axis=-1))  # whole landmarks
    np.testing.assert_array_equal(out[~now], raw[~now])


def test_augmenter_full_recipe_keeps_missing_and_feeds_preprocess(raw: np.ndarray) -> None:
    cfg = AugmentConfig(
        time_warp_prob=1.0,
        noise_prob=1.0,
        scale_prob=1.0,
        rotate_prob=1.0,
        hand_swap_prob=0.0,
        frame_drop_prob=0.0,
        landmark_drop_prob=0.0,
        time_warp_range=(1.0, 1.0),
    )
    out = Augmenter(cfg)(raw, np.random.default_rng(5))
    np.testing.assert_array_equal(np.isnan(out), np.isnan(raw))
    frames, idx = preprocess(out)
    assert frames.shape == (128, 92, 3) and idx.shape == (128,)
    assert np.isfinite(frames).all()


def test_augmenter_is_deterministic_per_rng_and_identity_when_off(raw: np.ndarray) -> None:
    aug = Augmenter(AugmentConfig(hand_swap_prob=0.5))
    a = aug(raw, np.random.default_rng(9))
    b = aug(raw, np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(Augmenter(AugmentConfig.none())(raw, np.random.default_rng(9)), raw)
