"""Where an exported model comes from: a native training checkpoint, a published state_dict, or
a freshly initialised preset, each resolved to a model, its config, labels and a provenance hash.

Everything that can go wrong with a user's input surfaces here as :class:`ExportError` with a
one-line message, before any output file is touched.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from model_src.config import ConfigError, ModelConfig, preset
from model_src.model import SLRTransformer, build_model

log = logging.getLogger(__name__)

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
    from model_src.checkpoint import CheckpointError, load_checkpoint

    try:
        loaded = load_checkpoint(checkpoint, fmt=fmt)
    except CheckpointError as exc:
        raise ExportError(str(exc)) from exc
    cfg = loaded.config
    if labels_path is not None:
        labels = _check_labels(read_labels(labels_path), cfg.num_classes, f"labels file {labels_path}")
    elif loaded.labels is not None:
        labels = _check_labels(loaded.labels, cfg.num_classes, f"checkpoint {checkpoint}")
    else:
        raise ExportError(
            f"{checkpoint} is a published state_dict without class names: pass --labels FILE "
            f"({cfg.num_classes} names, e.g. labels_500.json for the 500-class weights)"
        )
    return Source(model=loaded.model, config=cfg, labels=labels, sha256=loaded.sha256, kind=loaded.kind)


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
