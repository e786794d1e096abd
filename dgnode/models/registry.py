"""Models by name: ``model.name`` in a config picks the config class and the builder.

A model module registers itself::

    @dataclass
    class MyConfig(ModelConfig):
        name: str = "mine"
        depth: int = 2

    @register_model("mine", MyConfig)
    def build_mine(config: MyConfig, dims: dict[str, int], num_speakers: int, num_classes: int) -> nn.Module:
        ...

and is listed in :data:`BUILTIN_MODEL_MODULES` (imported on first use, so reading a config does
not import every model). A model's ``forward(batch)`` takes a
:class:`~dgnode.features.dataset.ConversationBatch` and returns a
:class:`~dgnode.models.base.ModelOutput`.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from dgnode.options import ConfigError, parse
from dgnode.models.base import ModelConfig

# Modules that call `register_model` at import; a new model appends its module here.
BUILTIN_MODEL_MODULES = (
    "dgnode.models.dgode",
    "dgnode.models.baselines",
    "dgnode.models.corect",
)

Builder = Callable[[Any, dict[str, int], int, int], nn.Module]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    config_class: type
    builder: Builder


_REGISTRY: dict[str, ModelSpec] = {}
_builtins_loaded = False


def register_model(name: str, config_class: type) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder`` under ``name`` with its config dataclass."""
    if not (dataclasses.is_dataclass(config_class) and issubclass(config_class, ModelConfig)):
        raise TypeError(f"config class of model {name!r} must be a ModelConfig dataclass, got {config_class!r}")

    def decorate(builder: Builder) -> Builder:
        existing = _REGISTRY.get(name)
        if existing is not None and existing.builder is not builder:
            # Re-importing the same module (importlib reload, pytest importlib mode) is fine;
            # two different models under one name is not.
            if existing.builder.__qualname__ != builder.__qualname__ or existing.builder.__module__ != builder.__module__:
                raise ValueError(f"model name {name!r} is already registered by {existing.builder.__module__}")
        _REGISTRY[name] = ModelSpec(name, config_class, builder)
        return builder

    return decorate


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        for module in BUILTIN_MODEL_MODULES:
            importlib.import_module(module)
        _builtins_loaded = True


def available_models() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def model_spec(name: str) -> ModelSpec:
    _load_builtins()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model.name {name!r}; available models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def model_config_from_dict(data: dict[str, Any] | ModelConfig, source: str = "config") -> ModelConfig:
    """Validate a ``model:`` section against the config class of its ``name`` (default dgode)."""
    if isinstance(data, ModelConfig):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: model must be a mapping, got {data!r}")
    name = data.get("name", ModelConfig.name)
    if not isinstance(name, str):
        raise ConfigError(f"{source}: model.name must be a string, got {name!r}")
    spec = model_spec(name)
    return parse(spec.config_class, {**data, "name": name}, source=source, prefix="model")


def build_model(config: ModelConfig | dict[str, Any], dims: dict[str, int], num_speakers: int, num_classes: int) -> nn.Module:
    """Instantiate the model ``config.name`` for inputs of ``dims`` (modality -> dim, the
    modalities the model uses), ``num_speakers`` speaker indices and ``num_classes`` labels."""
    config = model_config_from_dict(config)
    if not dims:
        raise ConfigError("a model needs at least one input modality")
    if num_speakers < 1 or num_classes < 2:
        raise ConfigError(f"need num_speakers >= 1 and num_classes >= 2, got {num_speakers}, {num_classes}")
    return model_spec(config.name).builder(config, dict(dims), num_speakers, num_classes)
