"""A synthetic keypoint dataset in the ``slr-extract`` + Slovo format, for tests and demos.

Real Slovo clips are large and licensed separately, yet training must be testable end to end
on CPU in seconds. Classes here differ the way signs do, by hand trajectories: class ``k``'s
right hand follows a circle, line or zigzag with a class-specific direction, frequency and
region, and the left hand is present for odd classes only. Face and pose are present with jitter; clips
vary in length, position, size and speed, and some frames lose their hands, as MediaPipe does.

Run ``python -m model_src.synthetic OUT_DIR`` to write one.
"""

from __future__ import annotations

import argparse
import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.contract.annotations import ANNOTATION_COLUMNS
from edge.contract.keypoint_file import save_keypoints
from edge.contract.layout import FACE, LEFT_HAND, NUM_LANDMARKS, POSE, RIGHT_HAND
from edge.contract.model_contract import DEFAULT_FPS

#: Fixed templates, independent of the dataset seed, so every dataset shares one "body".
_TEMPLATE_SEED = 20240611


@dataclass(frozen=True)
class SyntheticDataset:
    """Where a generated dataset lies and what it contains."""

    root: Path
    annotations: Path
    labels: list[str]
    num_clips: int


def class_label(k: int) -> str:
    """Label text of class ``k``; zero-padded so sorted order (Slovo's class order) is ``k`` order."""
    return f"жест_{k:03d}"


def _templates() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Face (468 points), pose (33) and hand (21, relative to the wrist) x-y templates."""
    rng = np.random.default_rng(_TEMPLATE_SEED)
    angle = rng.uniform(0, 2 * np.pi, 468)
    radius = np.sqrt(rng.uniform(0, 1, 468))
    face = np.stack([0.5 + 0.07 * radius * np.cos(angle), 0.28 + 0.1 * radius * np.sin(angle)], axis=1)
    pose = np.stack([rng.uniform(0.3, 0.7, 33), rng.uniform(0.2, 0.9, 33)], axis=1)
    fingers = [np.array([0.0, 0.0])]
    for f in range(5):  # 5 fingers x 4 joints fanning out upwards from the wrist
        direction = np.deg2rad(-150 + 30 * f)
        for j in range(1, 5):
            fingers.append(0.012 * j * np.array([np.cos(direction), np.sin(direction)]))
    return face, pose, np.stack(fingers)


def trajectory(k: int, num_classes: int, t: np.ndarray) -> np.ndarray:
    """Right-hand wrist offset ``[len(t), 2]`` of class ``k`` at phase ``t`` in [0, 1]."""
    shape = k % 3
    direction = 2 * math.pi * k / num_classes
    freq = 1 + (k // 3) % 3
    u = np.array([math.cos(direction), math.sin(direction)])
    v = np.array([-u[1], u[0]])
    centre = 0.08 * u  # each sign is made in its own region around the body
    if shape == 0:  # circle, starting at the class direction, turning freq times
        a = direction + 2 * math.pi * freq * t
        return centre + 0.08 * np.stack([np.cos(a), np.sin(a)], axis=1)
    if shape == 1:  # straight stroke along the class direction, back and forth freq times
        return centre + 0.16 * np.sin(math.pi * freq * t)[:, None] * u - 0.08 * u
    s = (t - 0.5)[:, None]
    zig = (2 / math.pi) * np.arcsin(np.sin(2 * math.pi * (freq + 1) * t))[:, None]  # triangle wave
    return centre + 0.2 * s * u + 0.05 * zig * v


def make_clip(
    k: int, num_classes: int, rng: np.random.Generator, length: tuple[int, int] = (30, 90)
) -> np.ndarray:
    """One clip of class ``k``: ``float32 [N, 543, 3]`` with NaN for parts not "detected"."""
    face_t, pose_t, hand_t = _templates()
    n = int(rng.integers(length[0], length[1] + 1))
    raw = np.full((n, NUM_LANDMARKS, 3), np.nan, dtype=np.float32)
    shift = rng.uniform(-0.04, 0.04, 2)
    size = rng.uniform(0.85, 1.15)
    # Signing speed varies: warp the phase with a random monotone power curve.
    t = np.linspace(0, 1, n) ** rng.uniform(0.8, 1.25)
    jitter = lambda count: rng.normal(0, 0.003, (n, count, 2))  # noqa: E731

    raw[:, FACE, :2] = face_t + shift + jitter(468)
    raw[:, POSE, :2] = pose_t + shift + jitter(33)
    right_wrist = np.array([0.4, 0.55]) + shift + size * trajectory(k, num_classes, t)
    raw[:, RIGHT_HAND, :2] = right_wrist[:, None] + size * hand_t + jitter(21)
    if k % 2 == 1:
        left_wrist = np.array([0.62, 0.6]) + shift + rng.normal(0, 0.01, 2)
        raw[:, LEFT_HAND, :2] = left_wrist + size * hand_t * [-1, 1] + jitter(21)
    # Pose wrist/hand points (13..21) follow the hands, as MediaPipe's do.
    raw[:, POSE.start + 15 : POSE.start + 22 : 2, :2] = right_wrist[:, None] + jitter(4)
    raw[..., 2] = np.where(np.isnan(raw[..., 0]), np.nan, rng.normal(0, 0.02, raw.shape[:2]))

    # Hands enter late / leave early, and flicker out in some frames.
    lead, tail = rng.integers(0, 5, 2)
    lost = rng.random(n) < 0.08
    lost[:lead] = True
    lost[n - tail :] = True
    raw[lost, LEFT_HAND] = np.nan
    raw[lost, RIGHT_HAND] = np.nan
    return raw


def make_synthetic_dataset(
    out_dir: str | Path,
    num_classes: int = 10,
    clips_per_class: int = 16,
    val_fraction: float = 0.25,
    seed: int = 0,
    length: tuple[int, int] = (30, 90),
) -> SyntheticDataset:
    """Write ``<id>.npz`` clips and a Slovo-style ``annotations.csv`` (TAB-separated) to ``out_dir``.

    The last ``round(clips_per_class * val_fraction)`` clips of each class are ``train=False``.
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_val = round(clips_per_class * val_fraction)
    rows = []
    for k in range(num_classes):
        for c in range(clips_per_class):
            raw = make_clip(k, num_classes, rng, length)
            clip_id = f"{rng.integers(16**12):012x}-{k:03d}-{c:03d}"
            timestamps = np.arange(len(raw), dtype=np.float64) / DEFAULT_FPS
            save_keypoints(root / f"{clip_id}.npz", raw, timestamps, DEFAULT_FPS)
            is_train = c < clips_per_class - n_val
            rows.append(
                [clip_id, f"user{c % 5}", 1920, 1080, len(raw), class_label(k), str(is_train), 0, len(raw)]
            )
    annotations = root / "annotations.csv"
    with annotations.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter="\t")
        writer.writerow(ANNOTATION_COLUMNS)
        writer.writerows(rows)
    return SyntheticDataset(root, annotations, [class_label(k) for k in range(num_classes)], len(rows))


def main(argv: list[str] | None = None) -> int:
    """CLI: write a synthetic dataset for a demo run of ``slr-train``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="directory to write <id>.npz and annotations.csv into")
    parser.add_argument("--classes", type=int, default=10, help="number of classes (default 10)")
    parser.add_argument("--clips-per-class", type=int, default=16, help="clips per class (default 16)")
    parser.add_argument("--val-fraction", type=float, default=0.25, help="train=False share per class")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    ds = make_synthetic_dataset(
        args.out_dir, args.classes, args.clips_per_class, args.val_fraction, args.seed
    )
    print(f"wrote {ds.num_clips} clips of {len(ds.labels)} classes and {ds.annotations}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
