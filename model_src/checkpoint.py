"""Native training checkpoints: what ``slr-train`` writes and what export, eval and resume read.

A checkpoint is a plain dict saved with :func:`torch.save`, holding only tensors, numbers,
strings, lists and dicts, so it loads with ``weights_only=True`` (no pickled code runs on load)::

    {
        "format": "slovo-edge/train-checkpoint", "version": 1,
        "model": state_dict, "optimizer": ..., "scheduler": ..., "scaler": ... | None,
        "epoch": int (completed epochs), "global_step": int,
        "config": ModelConfig.to_dict(), "train_config": TrainConfig.to_dict(),
        "labels": list[str], "best_val_acc": float, "best_epoch": int,
        "rng_state": {"python": ..., "numpy": ..., "torch": ByteTensor, "cuda": [...]},
        "metrics": list of per-epoch metric dicts,
    }

Writes are atomic (temporary file + :func:`os.replace`) so an interrupted run never leaves a
truncated ``last.pt`` behind to resume from.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model_src.config import ConfigError, ModelConfig
from model_src.model import SLRTransformer, build_model
from model_src.published import CheckpointError

FORMAT = "slovo-edge/train-checkpoint"
VERSION = 1
_REQUIRED_KEYS = ("model", "config", "labels", "epoch")

__all__ = [
    "FORMAT",
    "VERSION",
    "CheckpointError",
    "capture_rng_state",
    "is_training_checkpoint",
    "load_model_from_checkpoint",
    "load_training_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]


def capture_rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) RNG states, in weights-only-loadable types."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    model_config: ModelConfig,
    labels: list[str],
    train_config: Mapping[str, Any],
    epoch: int,
    global_step: int,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: torch.amp.GradScaler | None = None,
    best_val_acc: float = 0.0,
    best_epoch: int = 0,
    metrics: list[dict[str, float]] | None = None,
) -> Path:
    """Atomically write a training checkpoint (format in the module docstring) to ``path``."""
    if len(labels) != model_config.num_classes:
        raise CheckpointError(f"{len(labels)} labels for a model with {model_config.num_classes} classes")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "epoch": int(epoch),
        "global_step": int(global_step),
        "config": model_config.to_dict(),
        "train_config": dict(train_config),
        "labels": list(labels),
        "best_val_acc": float(best_val_acc),
        "best_epoch": int(best_epoch),
        "rng_state": capture_rng_state(),
        "metrics": list(metrics or []),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def is_training_checkpoint(obj: object) -> bool:
    """Whether ``obj`` (a loaded ``.pt`` payload) is a native slovo-edge training checkpoint."""
    return isinstance(obj, Mapping) and obj.get("format") == FORMAT and "model" in obj


def load_training_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a native checkpoint; :class:`CheckpointError` says what is wrong if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot be read as a torch checkpoint ({exc})") from exc
    if not is_training_checkpoint(obj):
        hint = (
            " (it looks like a plain state_dict, e.g. a published SLR_SLOVO checkpoint: "
            "use model_src.published.load_published_state_dict)"
            if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values())
            else ""
        )
        raise CheckpointError(f"{path}: not a slovo-edge training checkpoint (format {FORMAT!r}){hint}")
    if obj.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {obj.get('version')!r}, this code reads {VERSION}")
    missing = [key for key in _REQUIRED_KEYS if key not in obj]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    return obj


def load_model_from_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[SLRTransformer, ModelConfig, list[str]]:
    """The trained model (eval mode, on ``map_location``), its config and class labels."""
    ckpt = load_training_checkpoint(path, map_location)
    try:
        cfg = ModelConfig.from_dict(ckpt["config"])
    except ConfigError as exc:
        raise CheckpointError(f"{path}: invalid model config: {exc}") from exc
    labels = list(ckpt["labels"])
    if len(labels) != cfg.num_classes:
        raise CheckpointError(f"{path}: {len(labels)} labels for {cfg.num_classes} classes")
    model = build_model(cfg)
    try:
        model.load_state_dict(ckpt["model"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not match the stored config: {exc}") from exc
    return model.to(map_location).eval(), cfg, labels
