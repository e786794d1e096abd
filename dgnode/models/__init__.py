"""Conversation models: DGODE, the MLP and BiGRU baselines, and the registry that builds them.

Import the registry functions from here; the model modules load on first use.
"""

from dgnode.models.base import ModelConfig, ModelOutput
from dgnode.models.registry import (
    BUILTIN_MODEL_MODULES,
    available_models,
    build_model,
    model_config_from_dict,
    register_model,
)

__all__ = [
    "BUILTIN_MODEL_MODULES",
    "ModelConfig",
    "ModelOutput",
    "available_models",
    "build_model",
    "model_config_from_dict",
    "register_model",
]
