"""SLR_SLOVO keypoint transformer: model, presets, published-checkpoint loader, labels.

Training and export depend on torch; the on-device ``edge`` package never imports this one.
"""

from model_src.config import PRESETS, ConfigError, ModelConfig, preset
from model_src.model import SLRTransformer, build_model

__all__ = ["PRESETS", "ConfigError", "ModelConfig", "SLRTransformer", "build_model", "preset"]
