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

:func:`load_checkpoint` is the one reader of *any* checkpoint a user holds (this native format
or a published SLR_SLOVO ``state_dict``) for export and evaluation: it reads the file once and
takes the sha256 from the very bytes the weights come from.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model_src.config import ConfigError, ModelConfig
from model_src.model import SLRTransformer, build_model
from model_src.published import CheckpointError, is_published_state_dict, load_published_state_dict

FORMAT = "slovo-edge/train-checkpoint"
VERSION = 1
_REQUIRED_KEYS = ("model", "config", "labels", "epoch")
#: Values of ``load_checkpoint(fmt=...)``: detect, or force one of the two kinds.
FORMATS = ("auto", "native", "published")

__all__ = [
    "FORMAT",
    "FORMATS",
    "VERSION",
    "CheckpointError",
    "LoadedCheckpoint",
    "capture_rng_state",
    "detect_format",
    "is_training_checkpoint",
    "load_checkpoint",
    "load_model_from_checkpoint",
    "load_training_checkpoint",
    "read_checkpoint_file",
    "restore_rng_state",
    "save_checkpoint",
]


def capture_rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) RNG states, in weights-only-loadable types."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, internal, gauss = random.getstate()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [kind, np.asarray(keys).tolist(), int(pos), int(has_gauss), float(cached)],
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


def read_checkpoint_file(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[object, str]:
    """The payload of ``path`` and the sha256 of the bytes it was loaded from (one read).

    ``torch.load`` runs with ``weights_only=True``: a checkpoint must not be able to run code.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint is not a file: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read: {exc.strerror or exc}") from exc
    try:
        obj = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for non-checkpoints (pickle, zip, EOF, ...)
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({first[:160]})") from exc
    return obj, hashlib.sha256(data).hexdigest()


def detect_format(obj: object) -> str | None:
    """``"native"``, ``"published"`` or None for a loaded checkpoint payload."""
    if is_training_checkpoint(obj):
        return "native"
    if is_published_state_dict(obj):
        return "published"
    return None


def _check_training_payload(obj: object, path: Path) -> dict[str, Any]:
    """``obj`` as a valid native checkpoint dict, else :class:`CheckpointError` saying what is wrong."""
    if not is_training_checkpoint(obj):
        hint = (
            " (it looks like a plain state_dict, e.g. a published SLR_SLOVO checkpoint: "
            "use model_src.published.load_published_state_dict)"
            if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values())
            else ""
        )
        raise CheckpointError(f"{path}: not a slovo-edge training checkpoint (format {FORMAT!r}){hint}")
    assert isinstance(obj, dict)  # is_training_checkpoint: a Mapping, and torch.load gives dicts
    if obj.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {obj.get('version')!r}, this code reads {VERSION}")
    missing = [key for key in _REQUIRED_KEYS if key not in obj]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    return obj


def load_training_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a native checkpoint; :class:`CheckpointError` says what is wrong if it is not one."""
    obj, _ = read_checkpoint_file(path, map_location)
    return _check_training_payload(obj, Path(path))


def _native_model(
    ckpt: Mapping[str, Any], path: Path, map_location: str | torch.device
) -> tuple[SLRTransformer, ModelConfig, list[str]]:
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


def load_model_from_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[SLRTransformer, ModelConfig, list[str]]:
    """The trained model (eval mode, on ``map_location``), its config and class labels."""
    return _native_model(load_training_checkpoint(path, map_location), Path(path), map_location)


@dataclass
class LoadedCheckpoint:
    """A model read from a native or published checkpoint, with where it came from."""

    model: SLRTransformer
    config: ModelConfig
    #: Class names stored in a native checkpoint; None for a published state_dict (it has none).
    labels: list[str] | None
    #: "native" or "published".
    kind: str
    #: sha256 of the file, computed from the same bytes the weights were loaded from.
    sha256: str
    #: ``TrainConfig.to_dict()`` of a native checkpoint (e.g. to reproduce its validation split).
    train_config: dict[str, Any] | None = None


def _describe_keys(obj: object) -> str:
    if isinstance(obj, Mapping):
        keys = [str(k) for k in list(obj)[:3]]
        return f"a mapping with keys like {keys}" if keys else "an empty mapping"
    return f"a {type(obj).__name__}"


def load_checkpoint(
    path: str | Path, *, fmt: str = "auto", map_location: str | torch.device = "cpu"
) -> LoadedCheckpoint:
    """Read ``path`` once and build its model (eval mode); ``fmt`` forces a kind instead of detecting it.

    Raises :class:`CheckpointError` with a one-line reason for anything that is not a usable
    checkpoint of the forced or detected kind.
    """
    if fmt not in FORMATS:
        raise CheckpointError(f"unknown checkpoint format {fmt!r}; choose one of {FORMATS}")
    path = Path(path)
    obj, sha256 = read_checkpoint_file(path, map_location)
    kind = detect_format(obj) if fmt == "auto" else fmt
    if kind is None:
        raise CheckpointError(
            f"{path} is neither a slovo-edge training checkpoint nor a published SLR_SLOVO "
            f"state_dict (found {_describe_keys(obj)})"
        )
    try:
        if kind == "native":
            ckpt = _check_training_payload(obj, path)
            model, cfg, labels = _native_model(ckpt, path, map_location)
            return LoadedCheckpoint(model, cfg, labels, kind, sha256, ckpt.get("train_config"))
        if not isinstance(obj, Mapping):
            raise CheckpointError(f"expected a state dict (mapping of tensors), got {type(obj).__name__}")
        model, cfg = load_published_state_dict(obj)
    except CheckpointError as exc:
        detail = str(exc).removeprefix(f"{path}: ")
        raise CheckpointError(f"{path}: not a valid {kind} checkpoint: {detail}") from exc
    return LoadedCheckpoint(model.to(map_location).eval(), cfg, None, kind, sha256)
