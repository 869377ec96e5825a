"""Keypoint files: round trip, validation with one-line errors, atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.contract.keypoint_file import (
    TEMP_SUFFIX,
    KeypointClip,
    KeypointFileError,
    load_keypoints,
    save_keypoints,
)
from edge.contract.layout import NUM_LANDMARKS


def _clip(n: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n)
    landmarks = rng.random((n, NUM_LANDMARKS, 3), dtype=np.float32)
    landmarks[1, 468:489] = np.nan  # a missing hand survives the round trip
    return landmarks, np.arange(n) / 30.0


def test_round_trip(tmp_path: Path) -> None:
    landmarks, timestamps = _clip()
    path = save_keypoints(tmp_path / "abc.npz", landmarks, timestamps, 30)
    clip = load_keypoints(path)
    assert isinstance(clip, KeypointClip) and len(clip) == 5
    assert clip.landmarks.dtype == np.float32 and clip.timestamps.dtype == np.float64
    np.testing.assert_array_equal(clip.landmarks, landmarks)
    np.testing.assert_array_equal(clip.timestamps, timestamps)
    assert clip.fps == 30.0 and isinstance(clip.fps, float)
    with np.load(path) as raw:
        assert sorted(raw.files) == ["fps", "landmarks", "timestamps"]
        assert raw["fps"].shape == ()


def test_float64_landmarks_are_stored_as_float32(tmp_path: Path) -> None:
    landmarks, timestamps = _clip()
    save_keypoints(tmp_path / "a.npz", landmarks.astype(np.float64), timestamps.astype(np.float32), 25.0)
    with np.load(tmp_path / "a.npz") as raw:
        assert raw["landmarks"].dtype == np.float32 and raw["timestamps"].dtype == np.float64


@pytest.mark.parametrize(
    "landmarks, timestamps, fps, message",
    [
        (np.zeros((3, 542, 3), np.float32), np.zeros(3), 30.0, "landmarks must be"),
        (np.zeros((0, 543, 3), np.float32), np.zeros(0), 30.0, "landmarks must be"),
        (np.zeros((3, 543, 3), np.int32), np.zeros(3), 30.0, "floating point"),
        (np.zeros((3, 543, 3), np.float32), np.zeros(4), 30.0, "timestamps must be"),
        (np.zeros((3, 543, 3), np.float32), np.zeros(3), 0.0, "fps must be a positive"),
        (np.zeros((3, 543, 3), np.float32), np.zeros(3), float("nan"), "fps must be a positive"),
        (np.zeros((3, 543, 3), np.float32), np.zeros(3), [30.0], "fps must be a number"),
    ],
)
def test_save_validates(
    tmp_path: Path, landmarks: np.ndarray, timestamps: np.ndarray, fps: object, message: str
) -> None:
    with pytest.raises(KeypointFileError, match=message) as info:
        save_keypoints(tmp_path / "bad.npz", landmarks, timestamps, fps)  # type: ignore[arg-type]
    assert "\n" not in str(info.value) and "bad.npz" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_write_is_atomic_and_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    landmarks, timestamps = _clip()
    target = tmp_path / "vid.npz"
    save_keypoints(target, landmarks, timestamps, 30.0)
    before = target.read_bytes()

    seen: list[str] = []
    real_savez = np.savez

    def interrupted(handle: object, **arrays: np.ndarray) -> None:
        seen.extend(p.name for p in tmp_path.iterdir())
        real_savez(handle, **arrays)
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of a write

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_keypoints(target, landmarks * 2, timestamps, 30.0)
    temp_names = [name for name in seen if name != "vid.npz"]
    assert len(temp_names) == 1 and temp_names[0].endswith(TEMP_SUFFIX)
    assert not temp_names[0].endswith(".npz"), "resume logic must never mistake a temp file for a result"
    assert [p.name for p in tmp_path.iterdir()] == ["vid.npz"]
    assert target.read_bytes() == before, "the old file stays intact until the new one is complete"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not a zip file at all", "bad keypoint file"),
        (b"", "bad keypoint file"),
    ],
)
def test_load_rejects_garbage(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "garbage.npz"
    path.write_bytes(content)
    with pytest.raises(KeypointFileError, match=message) as info:
        load_keypoints(path)
    assert "\n" not in str(info.value) and "garbage.npz" in str(info.value)


def test_load_rejects_missing_keys_and_bad_shapes(tmp_path: Path) -> None:
    np.savez(tmp_path / "nokeys.npz", landmarks=np.zeros((2, 543, 3), np.float32))
    with pytest.raises(KeypointFileError, match="missing timestamps, fps"):
        load_keypoints(tmp_path / "nokeys.npz")
    np.savez(tmp_path / "shape.npz", landmarks=np.zeros((2, 75, 3)), timestamps=np.zeros(2), fps=30.0)
    with pytest.raises(KeypointFileError, match="landmarks must be"):
        load_keypoints(tmp_path / "shape.npz")
    np.save(tmp_path / "plain.npy", np.zeros(3))
    with pytest.raises(KeypointFileError, match=r"not an \.npz"):
        load_keypoints(tmp_path / "plain.npy")
    with pytest.raises(KeypointFileError, match="file not found"):
        load_keypoints(tmp_path / "absent.npz")
