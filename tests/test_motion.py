"""The idle motion gate on synthetic frames: sensor noise and lighting are still, an object is motion."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edge.camera.motion import MotionGate, changed_fraction, small_copy

SHAPE = (720, 1280, 3)


def room(seed: int = 0) -> np.ndarray:
    """A textured still scene: smooth shading, edges and fine grain (a wall, a table, a shelf)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]].astype(np.float32)
    base = 110 + 40 * np.sin(x / 97.0) * np.cos(y / 61.0) + rng.normal(0, 12, SHAPE[:2])
    base[400:, :] -= 35  # a table edge
    base[100:300, 900:1100] += 60  # a picture on the wall
    rgb = np.stack([base * 1.05, base, base * 0.9], axis=-1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def noisy(scene: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """``scene`` plus fresh Gaussian sensor noise (each frame its own)."""
    return np.clip(scene + rng.normal(0, sigma, scene.shape), 0, 255).astype(np.uint8)


def with_hand(scene: np.ndarray, x: int, y: int, size: int = 90) -> np.ndarray:
    """``scene`` with a skin-coloured blob (a hand seen from 1.5 m) whose top-left corner is at x, y."""
    out = scene.copy()
    out[y : y + size, x : x + size] = (205, 160, 130)
    return out


@pytest.mark.parametrize("sigma", [2.0, 6.0, 12.0])
def test_sensor_noise_alone_is_no_motion(sigma: float) -> None:
    rng = np.random.default_rng(1)
    scene = room()
    gate = MotionGate(0.005)
    gate.looked(noisy(scene, rng, sigma))
    fractions = []
    for _ in range(30):
        assert not gate.changed(noisy(scene, rng, sigma))
        assert gate.last_fraction is not None
        fractions.append(gate.last_fraction)
    print(f"noise sigma {sigma}: changed fraction max {max(fractions):.4f}")
    assert max(fractions) < 0.005


def test_a_global_brightness_step_is_no_motion() -> None:
    """Auto-exposure or a cloud: the whole frame a little brighter is not a person arriving."""
    rng = np.random.default_rng(2)
    scene = room()
    gate = MotionGate(0.005)
    gate.looked(noisy(scene, rng, 4.0))
    brighter = np.clip(scene.astype(np.int16) + 18, 0, 255).astype(np.uint8)
    assert not gate.changed(noisy(brighter, rng, 4.0))


@pytest.mark.parametrize(("x", "y"), [(600, 300), (40, 500), (1180, 620)])
def test_a_hand_entering_the_frame_is_motion(x: int, y: int) -> None:
    rng = np.random.default_rng(3)
    scene = room()
    gate = MotionGate(0.005)
    gate.looked(noisy(scene, rng, 6.0))
    assert gate.changed(noisy(with_hand(scene, x, y), rng, 6.0))
    assert gate.last_fraction is not None and gate.last_fraction > 0.005


def test_slow_motion_adds_up_against_the_last_look() -> None:
    """A hand creeping in by 3 px a frame is below any frame-to-frame measure, not against the last look."""
    rng = np.random.default_rng(4)
    scene = room()
    gate = MotionGate(0.005)
    gate.looked(noisy(scene, rng, 4.0))
    previous = noisy(scene, rng, 4.0)
    seen_at = None
    for step in range(60):
        frame = noisy(with_hand(scene, 1280 - 3 * step, 300), rng, 4.0)
        step_fraction = changed_fraction(small_copy(previous), small_copy(frame))
        assert step_fraction < 0.005  # frame to frame, it never looks like motion
        previous = frame
        if gate.changed(frame) and seen_at is None:
            seen_at = step
    assert seen_at is not None and seen_at < 40, seen_at


def test_moving_object_against_a_noisy_scene_is_told_from_noise() -> None:
    """Over many frames: every frame with the object moved is motion, every noise-only frame is not."""
    rng = np.random.default_rng(5)
    scene = room()
    gate = MotionGate(0.005)
    gate.looked(noisy(scene, rng, 8.0))
    verdicts = []
    for i in range(20):
        verdicts.append(gate.changed(noisy(scene, rng, 8.0)))
        verdicts.append(gate.changed(noisy(with_hand(scene, 100 + 50 * i, 450), rng, 8.0)))
    assert verdicts == [False, True] * 20


def test_a_hand_as_bright_as_the_wall_behind_it_is_motion() -> None:
    """Skin before a wall of the same grey: invisible in brightness, not in colour."""
    rng = np.random.default_rng(6)
    scene = room()
    y, x, size = 420, 500, 90
    grey = float(np.mean(scene[y : y + size, x : x + size] @ np.array([0.299, 0.587, 0.114])))
    skin = np.array([grey + 35, grey - 5, grey - 40])  # redder and less blue, the same luminance
    assert abs(float(skin @ np.array([0.299, 0.587, 0.114])) - grey) < 4
    hand = scene.copy()
    hand[y : y + size, x : x + size] = np.clip(skin, 0, 255).astype(np.uint8)
    gate = MotionGate(0.005)
    gate.looked(noisy(scene, rng, 6.0))
    assert gate.changed(noisy(hand, rng, 6.0))


def test_a_global_colour_step_is_no_motion_and_bgr_frames_compare_with_rgb_ones() -> None:
    """White balance drifting (every red a little higher) is not motion; a BGR frame of the scene neither."""
    rng = np.random.default_rng(7)
    scene = room()
    gate = MotionGate(0.005)
    gate.looked(noisy(scene, rng, 4.0))
    warmer = np.clip(scene.astype(np.int16) + np.array([14, 0, -10]), 0, 255).astype(np.uint8)
    assert not gate.changed(noisy(warmer, rng, 4.0))
    as_decoded = np.ascontiguousarray(noisy(scene, rng, 4.0)[..., ::-1])
    assert not gate.changed(as_decoded, bgr=True)
    assert gate.changed(np.ascontiguousarray(with_hand(scene, 600, 300)[..., ::-1]), bgr=True)
    gate.looked(as_decoded, bgr=True)
    assert not gate.changed(noisy(scene, rng, 4.0))


def test_a_scene_cut_is_motion() -> None:
    """Everything changed (another scene, a person filling the view): the difference is not noise."""
    rng = np.random.default_rng(8)
    gate = MotionGate(0.005)
    gate.looked(noisy(room(0), rng, 4.0))
    other = np.ascontiguousarray(room(1)[::-1, ::-1])
    assert gate.changed(noisy(other, rng, 4.0))
    assert gate.last_fraction is not None and gate.last_fraction > 0.5


def test_no_reference_area_zero_and_a_new_resolution_count_as_changed() -> None:
    scene = room()
    gate = MotionGate(0.005)
    assert gate.changed(scene) and gate.last_fraction is None  # nothing looked at yet
    gate.looked(scene)
    assert not gate.changed(scene) and gate.last_fraction == 0.0
    assert gate.changed(scene[:360, :640].copy())  # the stream changed resolution
    gate.reset()
    assert gate.changed(scene)
    off = MotionGate(0.0)
    off.looked(scene)
    assert off.changed(scene)
    with pytest.raises(ValueError, match="area"):
        MotionGate(1.5)


def test_small_copy_keeps_the_aspect_and_is_cheap() -> None:
    """80 px on the long side; the cost is printed (a figure, not an assertion: the machine is shared)."""
    scene = room()
    assert small_copy(scene).shape == (45, 80, 3) and small_copy(scene).dtype == np.int16
    assert small_copy(np.ascontiguousarray(scene.transpose(1, 0, 2))).shape == (80, 45, 3)
    assert small_copy(np.zeros((4, 4, 3), np.uint8)).shape == (80, 80, 3)
    gate = MotionGate(0.005)
    gate.looked(scene)
    start = time.process_time()
    for _ in range(200):
        gate.changed(scene)
    print(f"motion measure: {(time.process_time() - start) / 200 * 1000:.3f} ms CPU per 720p frame")
