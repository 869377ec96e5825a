"""Preprocessing (docs/MODEL.md §3): golden vectors and properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.contract.layout import LEFT_HAND, NUM_LANDMARKS, NUM_MODEL_ROWS, RIGHT_HAND
from edge.contract.preprocess import WINDOW, preprocess


@pytest.mark.parametrize("case", [0, 1, 2])
def test_matches_reference_vectors(tiny_vectors: dict[str, np.ndarray], case: int) -> None:
    frames, idx = preprocess(tiny_vectors[f"case{case}_raw"])
    np.testing.assert_allclose(frames, tiny_vectors[f"case{case}_frames"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(idx, tiny_vectors[f"case{case}_idx"], rtol=0, atol=1e-6)
    assert frames.dtype == np.float32 and idx.dtype == np.float32


def test_long_case_takes_pooling_path(tiny_vectors: dict[str, np.ndarray]) -> None:
    raw = tiny_vectors["case1_raw"]
    assert len(raw) >= WINDOW
    _, idx = preprocess(raw)
    assert (idx != -1).all(), "a pooled long sequence has no padding"
    assert not np.allclose(idx, np.round(idx)), "pooled indices are group means, some fractional"


def test_hand_x_is_mirrored_and_other_rows_are_not() -> None:
    raw = np.full((3, NUM_LANDMARKS, 3), 0.25, dtype=np.float32)
    frames, idx = preprocess(raw)
    np.testing.assert_allclose(frames[:3, 40:82, 0], 0.75)
    np.testing.assert_allclose(frames[:3, :40, 0], 0.25)
    np.testing.assert_allclose(frames[:3, 82:, 0], 0.25)
    np.testing.assert_allclose(frames[:3, :, 1:], 0.25)
    assert idx[:4].tolist() == [0, 1, 2, -1]


def test_frames_without_hands_are_dropped_and_indices_rebased() -> None:
    raw = np.full((6, NUM_LANDMARKS, 3), 0.5, dtype=np.float32)
    raw[[0, 1, 3], LEFT_HAND] = np.nan
    raw[[0, 1, 3], RIGHT_HAND] = np.nan
    _, idx = preprocess(raw)
    assert idx[:4].tolist() == [0, 2, 3, -1]


def test_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match="543"):
        preprocess(np.zeros((4, 92, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        preprocess(np.zeros((0, NUM_LANDMARKS, 3), dtype=np.float32))


@st.composite
def raw_sequences(draw: st.DrawFn) -> np.ndarray:
    n = draw(st.integers(min_value=1, max_value=400))
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    rng = np.random.default_rng(seed)
    raw = rng.random((n, NUM_LANDMARKS, 3), dtype=np.float32)
    p_missing = draw(st.sampled_from([0.0, 0.3, 0.9, 1.0]))
    for part in (slice(0, 468), LEFT_HAND, slice(489, 522), RIGHT_HAND):
        missing = rng.random(n) < p_missing
        raw[missing, part] = np.nan
    if draw(st.booleans()):  # scattered single NaN values too
        raw[rng.random(raw.shape) < 0.01] = np.nan
    return raw


@settings(max_examples=60, deadline=None)
@given(raw_sequences())
def test_any_input_gives_clean_window(raw: np.ndarray) -> None:
    frames, idx = preprocess(raw)
    assert frames.shape == (WINDOW, NUM_MODEL_ROWS, 3) and idx.shape == (WINDOW,)
    assert not np.isnan(frames).any() and not np.isnan(idx).any()
    padding = idx == -1
    if padding.any():
        first_pad = int(np.argmax(padding))
        assert padding[first_pad:].all(), "padding only at the end"
        assert (frames[padding] == 0).all(), "padding frames are zeros"
    assert (idx[~padding] >= 0).all(), "-1 only at padding"
    assert np.all(np.diff(idx[~padding]) >= 0), "indices never go backwards"
