"""Ring buffer: time order across wrap-around, incremental hand count, no reallocation."""

from __future__ import annotations

import numpy as np
import pytest

from edge.contract.layout import LEFT_HAND, RIGHT_HAND, empty_frame, has_hands
from edge.keypoints.ring_buffer import KeypointRingBuffer


def frame(value: float, hands: str = "") -> np.ndarray:
    kp = empty_frame()
    kp[0] = value  # a face point carries the frame's identity
    if "L" in hands:
        kp[LEFT_HAND] = 0.5
    if "R" in hands:
        kp[RIGHT_HAND.start] = 0.25  # one point of one hand is enough
    return kp


def test_fill_and_order_before_wrap() -> None:
    buf = KeypointRingBuffer(4)
    assert buf.fill == 0 and buf.hand_frames == 0
    raw, ts = buf.window()
    assert raw.shape == (0, 543, 3) and ts.shape == (0,)
    for i in range(3):
        buf.append(frame(i), 10.0 + i)
    raw, ts = buf.window()
    assert buf.fill == 3
    assert raw[:, 0, 0].tolist() == [0, 1, 2]
    assert ts.tolist() == [10.0, 11.0, 12.0]


def test_wrap_keeps_most_recent_in_time_order() -> None:
    buf = KeypointRingBuffer(4)
    for i in range(10):
        buf.append(frame(i), float(i))
    raw, ts = buf.window()
    assert buf.fill == 4
    assert raw[:, 0, 0].tolist() == [6, 7, 8, 9]
    assert ts.tolist() == [6.0, 7.0, 8.0, 9.0]
    raw2, ts2 = buf.window(last=2)
    assert raw2[:, 0, 0].tolist() == [8, 9] and ts2.tolist() == [8.0, 9.0]


def test_window_is_a_copy() -> None:
    buf = KeypointRingBuffer(3)
    buf.append(frame(1), 1.0)
    raw, _ = buf.window()
    raw[:] = 99
    assert buf.window()[0][0, 0, 0] == 1


def test_hand_count_tracks_overwrites() -> None:
    rng = np.random.default_rng(0)
    buf = KeypointRingBuffer(5)
    for i in range(40):
        buf.append(frame(i, rng.choice(["", "L", "R", "LR"])), float(i))
        raw, _ = buf.window()
        assert buf.hand_frames == int(has_hands(raw).sum())
        assert buf.last_has_hands == bool(has_hands(raw[-1:])[0])


def test_clear_and_storage_is_reused() -> None:
    buf = KeypointRingBuffer(3)
    storage = buf._kp
    for i in range(7):
        buf.append(frame(i, "L"), float(i))
    buf.clear()
    assert buf.fill == 0 and buf.hand_frames == 0 and not buf.last_has_hands
    buf.append(frame(5), 5.0)
    assert buf._kp is storage  # no reallocation
    assert buf.window()[0][:, 0, 0].tolist() == [5]


def test_rejects_wrong_shape() -> None:
    buf = KeypointRingBuffer(3)
    with pytest.raises(ValueError, match="shape"):
        buf.append(np.zeros((92, 3), np.float32), 0.0)
