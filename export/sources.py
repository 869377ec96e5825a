"""Where an exported model comes from: a native training checkpoint, a published state_dict, or
a freshly initialised preset, each resolved to a model, its config, labels and a provenance hash.

Everything that can go wrong with a user's input surfaces here as :class:`ExportError` with a
one-line message, before any output file is touched.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from edge.runtime.inference import file_sha256
from model_src.config import ConfigError, ModelConfig, preset
from model_src.model import SLRTransformer, build_model

log = logging.getLogger(__name__)

FORMATS = ("auto", "published", "native")
#: Seed of ``--random-init`` models, so the same command always exports the same weights.
RANDOM_INIT_SEED = 0


class ExportError(Exception):
    """A problem with the user's input or output that export reports in one line (exit code 2)."""


@dataclass
class Source:
    """A model ready to export, with everything the metadata needs to say where it came from."""

    model: SLRTransformer
    config: ModelConfig
    labels: list[str]
    #: sha256 of the checkpoint file, or of the initial state for ``--random-init``.
    sha256: str
    #: "native", "published" or "random-init".
    kind: str
    #: True for ``--random-init``: the metadata says so plainly (``slr.untrained``).
    untrained: bool = False


def state_sha256(model: torch.nn.Module) -> str:
    """sha256 over the state_dict (sorted names, shapes, raw bytes): identifies untrained weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(data.shape)}:{data.dtype}\n".encode())
        digest.update(data.numpy().tobytes())
    return digest.hexdigest()


def read_labels(path: Path) -> list[str]:
    """Labels from a file via :func:`model_src.labels.load_labels` (JSON list/mapping, text, CSV)."""
    from model_src.labels import LabelError, load_labels

    if not path.is_file():
        raise ExportError(f"labels file not found: {path}")
    try:
        return list(load_labels(path))
    except (LabelError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise ExportError(f"cannot read labels from {path}: {exc}") from exc


def generated_labels(count: int) -> list[str]:
    """Placeholder names ``class_0..class_{n-1}`` (only for untrained ``--random-init`` models)."""
    return [f"class_{i}" for i in range(count)]


def _describe_keys(obj: object) -> str:
    if isinstance(obj, Mapping):
        keys = [str(k) for k in list(obj)[:3]]
        return f"a mapping with keys like {keys}" if keys else "an empty mapping"
    return f"a {type(obj).__name__}"


def _torch_load(path: Path) -> object:
    """``torch.load`` with ``weights_only=True``: a checkpoint must not be able to run code."""
    if not path.exists():
        raise ExportError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise ExportError(f"checkpoint is not a file: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for non-checkpoints (pickle, zip, EOF, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{path} is not a readable PyTorch checkpoint ({first[:160]})") from exc


def detect_format(obj: object) -> str | None:
    """``"native"``, ``"published"`` or None for a loaded checkpoint payload."""
    from model_src.checkpoint import is_training_checkpoint
    from model_src.published import is_published_state_dict

    if is_training_checkpoint(obj):
        return "native"
    if is_published_state_dict(obj):
        return "published"
    return None


def _check_labels(labels: list[str], num_classes: int, origin: str) -> list[str]:
    if len(labels) != num_classes:
        raise ExportError(
            f"{origin} has {len(labels)} labels but the model's classifier has {num_classes} outputs"
        )
    if len(set(labels)) != len(labels):
        log.warning("%s contains duplicate label names", origin)
    return labels


def load_checkpoint_source(checkpoint: Path, *, fmt: str = "auto", labels_path: Path | None = None) -> Source:
    """Load a native or published checkpoint (auto-detected unless ``fmt`` forces one)."""
    from model_src.checkpoint import load_model_from_checkpoint
    from model_src.published import CheckpointError, load_published_state_dict

    if fmt not in FORMATS:
        raise ExportError(f"unknown checkpoint format {fmt!r}; choose one of {FORMATS}")
    obj = _torch_load(checkpoint)
    detected = detect_format(obj)
    kind = detected if fmt == "auto" else fmt
    if kind is None:
        raise ExportError(
            f"{checkpoint} is neither a slovo-edge training checkpoint nor a published SLR_SLOVO "
            f"state_dict (found {_describe_keys(obj)})"
        )
    sha = file_sha256(checkpoint)
    try:
        if kind == "native":
            model, cfg, ckpt_labels = load_model_from_checkpoint(checkpoint)
        else:
            model, cfg = load_published_state_dict(obj)  # type: ignore[arg-type]
            ckpt_labels = None
    except CheckpointError as exc:
        raise ExportError(f"{checkpoint}: not a valid {kind} checkpoint: {exc}") from exc

    if labels_path is not None:
        labels = _check_labels(read_labels(labels_path), cfg.num_classes, f"labels file {labels_path}")
    elif ckpt_labels is not None:
        labels = _check_labels(list(ckpt_labels), cfg.num_classes, f"checkpoint {checkpoint}")
    else:
        raise ExportError(
            f"{checkpoint} is a published state_dict without class names: pass --labels FILE "
            f"({cfg.num_classes} names, e.g. labels_500.json for the 500-class weights)"
        )
    return Source(model=model.eval(), config=cfg, labels=labels, sha256=sha, kind=kind)


def random_init_source(
    preset_name: str, *, num_classes: int | None = None, labels_path: Path | None = None
) -> Source:
    """A freshly initialised ``preset_name`` model (fixed seed), marked untrained.

    Class count: ``num_classes``, else the number of ``--labels``, else the preset's.
    """
    labels = read_labels(labels_path) if labels_path is not None else None
    if num_classes is None and labels is not None:
        num_classes = len(labels)
    try:
        cfg = preset(preset_name) if num_classes is None else preset(preset_name, num_classes=num_classes)
    except ConfigError as exc:
        raise ExportError(str(exc)) from exc
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        model = build_model(cfg).eval()
    if labels is None:
        labels = generated_labels(cfg.num_classes)
    else:
        labels = _check_labels(labels, cfg.num_classes, f"labels file {labels_path}")
    return Source(
        model=model, config=cfg, labels=labels, sha256=state_sha256(model), kind="random-init", untrained=True
    )
