"""Training hyper-parameters as plain data, loadable from TOML.

Every knob of the recipe lives here (not in argparse defaults or module constants) so a run is
fully described by one dict, stored in each checkpoint and reproducible from it. Each part of
the recipe can be switched off by a zero (probability, weight, patience, ...).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the tomli backport, a dependency there
    import tomli as tomllib


class TrainConfigError(ValueError):
    """A training configuration that is malformed or names unknown settings."""


@dataclass(frozen=True)
class AugmentConfig:
    """Raw-keypoint augmentations (applied before preprocessing). ``*_prob`` = 0 disables one."""

    #: Resample the clip to ``round(N * f)`` frames, f uniform in ``time_warp_range``.
    time_warp_prob: float = 0.5
    time_warp_range: tuple[float, float] = (0.7, 1.3)
    #: Gaussian noise added to every coordinate.
    noise_prob: float = 0.5
    noise_std: float = 0.004
    #: Isotropic scaling of x, y, z around the clip's x-y centre.
    scale_prob: float = 0.5
    scale_range: tuple[float, float] = (0.85, 1.15)
    #: Rotation in the x-y plane around the clip's x-y centre, uniform in ±``rotate_degrees``.
    rotate_prob: float = 0.5
    rotate_degrees: float = 12.0
    #: Swap the left and right hand rows and mirror x (a left-handed signer).
    hand_swap_prob: float = 0.0
    #: Remove each frame with probability ``frame_drop_rate`` (at least one frame survives).
    frame_drop_prob: float = 0.3
    frame_drop_rate: float = 0.1
    #: Set each landmark to NaN with probability ``landmark_drop_rate``; drop a whole hand with
    #: probability ``hand_drop_rate`` per frame.
    landmark_drop_prob: float = 0.3
    landmark_drop_rate: float = 0.05
    hand_drop_rate: float = 0.05

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_prob", "_rate")) and not 0.0 <= value <= 1.0:
                raise TrainConfigError(f"augment.{f.name} must be in [0, 1], got {value}")
        for name in ("time_warp_range", "scale_range"):
            low, high = getattr(self, name)
            if not 0.0 < low <= high:
                raise TrainConfigError(f"augment.{name} must satisfy 0 < low <= high, got {(low, high)}")

    @property
    def enabled(self) -> bool:
        """Whether any augmentation can fire (lets the dataset skip the copy when none can)."""
        return any(getattr(self, f.name) > 0 for f in fields(self) if f.name.endswith("_prob"))

    @classmethod
    def none(cls) -> AugmentConfig:
        """All augmentations off."""
        off: dict[str, Any] = {f.name: 0.0 for f in fields(cls) if f.name.endswith("_prob")}
        return cls(**off)


@dataclass(frozen=True)
class TrainConfig:
    """One training run: model preset, optimisation recipe, data split and output directory."""

    # Model
    preset: str = "edge"
    #: ModelConfig fields overriding the preset (``num_classes`` is always set from the labels).
    model_overrides: dict[str, Any] = field(default_factory=dict)
    # Schedule
    epochs: int = 60
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    #: Linear warm-up from ``lr * warmup_start`` to ``lr`` over this many optimiser steps.
    warmup_steps: int = 200
    warmup_start: float = 0.01
    #: Cosine cycle length in steps after warm-up; 0 = one cycle over the remaining run.
    cycle_steps: int = 0
    #: Peak learning rate factor applied per completed cycle (1.0 = restarts at full lr).
    cycle_decay: float = 0.5
    #: Learning rate at the bottom of each cosine, as a fraction of that cycle's peak.
    min_lr_ratio: float = 0.01
    #: Global gradient-norm clip; 0 disables.
    grad_clip: float = 1.0
    # Loss
    #: Focal-loss focusing parameter; 0 = plain cross-entropy.
    focal_gamma: float = 2.0
    label_smoothing: float = 0.1
    #: Weight of each auxiliary classifier's loss; 0 disables the auxiliary heads in training.
    aux_weight: float = 0.3
    mixup_alpha: float = 0.2
    #: Probability that a batch is mixed; 0 disables MixUp.
    mixup_prob: float = 0.5
    # Model-side data handling
    #: Set the model's normalisation buffers from the training clips' landmark statistics.
    fit_normalization: bool = True
    # Runtime
    #: ``auto`` = CUDA when available, else CPU; or any torch device string.
    device: str = "auto"
    #: Mixed precision (autocast float16 + GradScaler) where the device is CUDA; ignored on CPU.
    amp: bool = True
    seed: int = 0
    #: Stop when validation accuracy has not improved for this many epochs; 0 disables.
    patience: int = 15
    #: Random validation fraction used when the data has no validation rows (or when forced).
    val_fraction: float = 0.1
    workers: int = 0
    out: str = "runs/slr"
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.warmup_steps >= 0 and self.cycle_steps >= 0, "warmup_steps and cycle_steps must be >= 0"),
            (0 < self.cycle_decay <= 1, f"cycle_decay must be in (0, 1], got {self.cycle_decay}"),
            (0 <= self.min_lr_ratio <= 1, f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}"),
            (0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing}"),
            (self.focal_gamma >= 0 and self.aux_weight >= 0, "focal_gamma and aux_weight must be >= 0"),
            (0 <= self.mixup_prob <= 1, f"mixup_prob must be in [0, 1], got {self.mixup_prob}"),
            (0 <= self.val_fraction < 1, f"val_fraction must be in [0, 1), got {self.val_fraction}"),
            (self.patience >= 0 and self.workers >= 0, "patience and workers must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise TrainConfigError(message)

    def to_dict(self) -> dict[str, Any]:
        """A JSON/TOML-ready dict (stored in checkpoints)."""
        data = dataclasses.asdict(self)
        data["augment"] = {k: list(v) if isinstance(v, tuple) else v for k, v in data["augment"].items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error so typos cannot pass silently."""
        data = dict(data)
        augment = data.pop("augment", {})
        # TOML users naturally write the model overrides as a [model] table.
        if "model" in data:
            data["model_overrides"] = {**data.get("model_overrides", {}), **data.pop("model")}
        _check_keys(cls, data, "")
        _check_keys(AugmentConfig, augment, "augment.")
        augment = {k: tuple(v) if isinstance(v, list) else v for k, v in augment.items()}
        return cls(**data, augment=AugmentConfig(**augment))

    @classmethod
    def from_toml(cls, path: str | Path) -> TrainConfig:
        """Load a TOML file: top-level keys are TrainConfig fields, ``[augment]`` and ``[model]`` tables."""
        from edge.util.files import read_regular_file

        try:
            text = read_regular_file(path).decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise TrainConfigError(f"config file {path}: {reason or exc}") from None
        try:
            return cls.from_dict(tomllib.loads(text))
        except tomllib.TOMLDecodeError as exc:
            raise TrainConfigError(f"{path}: {exc}") from exc

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (``None`` values are ignored: unset CLI flags)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def _check_keys(cls: type, data: Mapping[str, Any], prefix: str) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise TrainConfigError(f"unknown training config key(s) {[prefix + k for k in unknown]}")
