"""Model hyper-parameters as plain data, and the named presets.

The config travels with every trained and exported model (``slr.config`` metadata), so it must
round-trip through JSON unchanged and reject keys it does not know instead of silently dropping
a setting someone meant to apply.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


class ConfigError(ValueError):
    """A model configuration that cannot describe a valid SLR_SLOVO model."""


@dataclass(frozen=True)
class ModelConfig:
    """Shape of an SLR_SLOVO model (docs/MODEL.md §4). Defaults are the published full-size model."""

    d_model: int = 512
    num_layers: int = 8
    num_heads: int = 8
    num_classes: int = 1001
    window: int = 128
    #: Heads of the per-frame self-attention over landmark patches.
    embedding_heads: int = 4
    #: Heads of the attention pooling over frames.
    pooling_heads: int = 8
    #: Rows of ``temporal_embed`` (the published model has 1000; only the first ``window`` are used).
    max_positions: int = 1000
    #: Training dropout (attention weights, attention/MLP outputs, embeddings); inactive in eval.
    dropout: float = 0.0

    def __post_init__(self) -> None:
        d = self.d_model
        checks = [
            (d > 0 and d % 4 == 0, f"d_model must be a positive multiple of 4 (classifier: D/4), got {d}"),
            (self.num_layers >= 1, f"num_layers must be >= 1, got {self.num_layers}"),
            (self.num_classes >= 1, f"num_classes must be >= 1, got {self.num_classes}"),
            (self.window >= 1, f"window must be >= 1, got {self.window}"),
            (
                self.max_positions >= self.window,
                f"max_positions ({self.max_positions}) must be >= window ({self.window})",
            ),
            (0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}"),
        ]
        for name in ("num_heads", "embedding_heads", "pooling_heads"):
            heads = getattr(self, name)
            ok = heads >= 1 and d % heads == 0
            checks.append((ok, f"d_model ({d}) must be divisible by {name} ({heads})"))
        for name in ("num_heads", "embedding_heads"):  # RoPE rotates half-vectors: even head dim
            heads = getattr(self, name)
            ok = heads >= 1 and d % heads == 0 and (d // heads) % 2 == 0
            checks.append((ok, f"RoPE needs an even head size: d_model / {name} = {d}/{heads}"))
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-ready dict (what ``slr.config`` stores)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; missing keys take defaults, unknown keys are an error.

        Unknown keys are refused rather than ignored: a typo such as ``num_layer`` would otherwise
        build a different model than the one the file describes.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"model config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown model config key(s) {unknown}; valid keys: {sorted(known)}")
        return cls(**dict(data))


PRESETS: dict[str, ModelConfig] = {
    # The published SLR_SLOVO model (29.8 M parameters at 500 classes).
    "slr-slovo": ModelConfig(),
    # For small devices: ~9 ms per window in ONNX Runtime on 2 cores of the dev machine (budget
    # 15 ms; the full model ~50 ms), 1.7 M parameters at 1001 classes. d_model 192 also fits the
    # budget (~16 ms single-thread) but trained markedly slower on the synthetic smoke task.
    "edge": ModelConfig(d_model=128, num_layers=4, num_heads=8, embedding_heads=4, pooling_heads=8),
    # The architecture of the reference tiny checkpoint (tests, smoke runs).
    "tiny": ModelConfig(d_model=64, num_layers=2, num_classes=10),
}


def preset(name: str, **overrides: Any) -> ModelConfig:
    """The named preset, with ``overrides`` applied (e.g. ``preset("edge", num_classes=500)``)."""
    try:
        base = PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown model preset {name!r}; valid presets: {sorted(PRESETS)}") from None
    if not overrides:
        return base
    return ModelConfig.from_dict({**base.to_dict(), **overrides})
