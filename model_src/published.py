"""Load the published SLR_SLOVO ``state_dict`` (500- or 1001-class) into :class:`SLRTransformer`.

The architecture is inferred from tensor shapes, then the checkpoint must match the model built
from that config key-for-key and shape-for-shape; anything else is refused with the first
offending key named, because a silently partial load would produce a confidently wrong model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import Tensor

from model_src.config import ConfigError, ModelConfig
from model_src.model import SLRTransformer, build_model

# Keys the config is inferred from (docs/MODEL.md §1 names).
_D_MODEL_KEY = "transformer.norm.weight"
_CLASSES_KEY = "classifier.final_classifier.weight"
_POSITIONS_KEY = "embedding.temporal_embed.weight"
_EMBED_ROPE_KEY = "embedding.lips_embedding.self_attention.attention.rope.inv_freq"
_BLOCK_ROPE_KEY = "transformer.local_blocks.0.attention.attention.rope.inv_freq"
_GLOBAL_ROPE_KEY = "transformer.global_blocks.0.attention.attention.rope.inv_freq"
_BLOCK_RE = re.compile(r"^transformer\.(local|global)_blocks\.(\d+)\.")
#: Keys whose presence identifies a published SLR_SLOVO state dict.
_SIGNATURE_KEYS = (_D_MODEL_KEY, _CLASSES_KEY, _POSITIONS_KEY, _EMBED_ROPE_KEY, "LIPS_MEAN")


class CheckpointError(Exception):
    """A checkpoint that is not (exactly) a published SLR_SLOVO state dict."""


def is_published_state_dict(obj: object) -> bool:
    """Whether ``obj`` looks like a published SLR_SLOVO state dict (a mapping of tensors with its keys)."""
    if not isinstance(obj, Mapping):
        return False
    return all(isinstance(obj.get(key), Tensor) for key in _SIGNATURE_KEYS)


def _shape(state_dict: Mapping[str, Tensor], key: str) -> tuple[int, ...]:
    try:
        value = state_dict[key]
    except KeyError:
        raise CheckpointError(f"missing key {key!r}: not a published SLR_SLOVO state dict") from None
    if not isinstance(value, Tensor):
        raise CheckpointError(f"key {key!r} holds {type(value).__name__}, expected a tensor")
    return tuple(value.shape)


def _heads_from_rope(d_model: int, state_dict: Mapping[str, Tensor], key: str) -> int:
    """RoPE's ``inv_freq`` has d_k/2 entries, so heads = D / (2·len(inv_freq))."""
    shape = _shape(state_dict, key)
    half = shape[0] if len(shape) == 1 else 0
    if half <= 0 or d_model % (2 * half):
        raise CheckpointError(f"{key!r} has shape {shape}: not d_k/2 entries for d_model {d_model}")
    return d_model // (2 * half)


def infer_config(state_dict: Mapping[str, Tensor], *, num_classes: int | None = None) -> ModelConfig:
    """The :class:`ModelConfig` a published state dict was trained with, from its shapes alone.

    ``pooling_heads`` is not visible in the shapes (MultiheadAttention packs its heads) and takes
    the published value, 8.
    """
    d_shape = _shape(state_dict, _D_MODEL_KEY)
    if len(d_shape) != 1:
        raise CheckpointError(f"{_D_MODEL_KEY!r} has shape {d_shape}, expected (d_model,)")
    d_model = d_shape[0]
    found_classes = _shape(state_dict, _CLASSES_KEY)[0]
    if num_classes is not None and num_classes != found_classes:
        raise CheckpointError(
            f"{_CLASSES_KEY!r}: expected {num_classes} classes, the checkpoint has {found_classes}"
        )
    blocks: dict[str, set[int]] = {"local": set(), "global": set()}
    for key in state_dict:
        match = _BLOCK_RE.match(key)
        if match:
            blocks[match.group(1)].add(int(match.group(2)))
    n_local, n_global = len(blocks["local"]), len(blocks["global"])
    num_layers = n_local + n_global
    if num_layers == 0 or n_local != num_layers // 2:
        raise CheckpointError(
            f"unexpected transformer blocks: {n_local} local and {n_global} global "
            "(expected floor(L/2) local_blocks and the rest global_blocks)"
        )
    rope_key = _BLOCK_ROPE_KEY if n_local else _GLOBAL_ROPE_KEY
    try:
        return ModelConfig(
            d_model=d_model,
            num_layers=num_layers,
            num_heads=_heads_from_rope(d_model, state_dict, rope_key),
            num_classes=found_classes,
            embedding_heads=_heads_from_rope(d_model, state_dict, _EMBED_ROPE_KEY),
            max_positions=_shape(state_dict, _POSITIONS_KEY)[0],
        )
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint shapes describe an invalid model: {exc}") from exc


def check_keys(expected: Mapping[str, Tensor], found: Mapping[str, Tensor]) -> None:
    """Raise :class:`CheckpointError` naming the first missing, unexpected or mis-shaped key."""
    for key, ref in expected.items():
        if key not in found:
            raise CheckpointError(f"missing key {key!r} (expected shape {tuple(ref.shape)})")
        value = found[key]
        if not isinstance(value, Tensor):
            raise CheckpointError(f"key {key!r} holds {type(value).__name__}, expected a tensor")
        if tuple(value.shape) != tuple(ref.shape):
            raise CheckpointError(
                f"shape mismatch for {key!r}: expected {tuple(ref.shape)}, found {tuple(value.shape)}"
            )
    for key in found:
        if key not in expected:
            raise CheckpointError(f"unexpected key {key!r} (shape {tuple(found[key].shape)})")


def load_published_state_dict(
    state_dict: Mapping[str, Tensor], *, num_classes: int | None = None
) -> tuple[SLRTransformer, ModelConfig]:
    """Build the model a published state dict describes and load it exactly; returns it in eval mode.

    ``num_classes``, when given, must equal the checkpoint's (e.g. 1001 for the 1000-class weights).
    """
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"expected a state dict (mapping of tensors), got {type(state_dict).__name__}")
    cfg = infer_config(state_dict, num_classes=num_classes)
    model = build_model(cfg)
    expected = to_published_state_dict(model)
    check_keys(expected, state_dict)
    model.load_state_dict({k: v.to(torch.float32) for k, v in state_dict.items()}, strict=True)
    return model.eval(), cfg


def to_published_state_dict(model: SLRTransformer) -> dict[str, Tensor]:
    """Our model's weights under the published key names (identity: the names were kept)."""
    return dict(model.state_dict())
