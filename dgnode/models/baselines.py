"""Baselines in the same framework as DGODE (same batch in, same :class:`ModelOutput` out).

* ``mlp`` (:class:`ContextFreeMLP`): each utterance on its own, modalities concatenated:
  ``x_i = [x_text; x_audio; x_vision]`` -> ``layers`` x (Linear, ReLU, Dropout) -> classifier.
  What the features alone are worth, without any conversational context.
* ``bigru`` (:class:`ContextGRU`): the concatenated features through a GRU over each dialogue
  (bidirectional, or forward-only with ``causal``), plus the speaker embedding, then the
  classifier: context without a graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dgnode.models.base import BatchLike, EmotionClassifier, ModelConfig, ModelOutput, select_features
from dgnode.models.recurrence import ContextEncoder
from dgnode.models.registry import register_model


@dataclass
class MLPConfig(ModelConfig):
    """``layers``: hidden Linear-ReLU blocks before the classifier head (>= 0)."""

    name: str = "mlp"
    use_speaker: bool = False
    layers: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.layers < 0:
            raise ValueError(f"layers must be >= 0, got {self.layers}")


@dataclass
class ContextGRUConfig(ModelConfig):
    """``causal``: forward-only GRU (no look at future utterances); ``layers``: GRU layers."""

    name: str = "bigru"
    causal: bool = False
    layers: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.layers < 1:
            raise ValueError(f"layers must be >= 1, got {self.layers}")
        if not self.causal and self.hidden % 2:
            raise ValueError(f"hidden must be even: the bidirectional GRU uses hidden/2 units per direction, got {self.hidden}")


class ContextFreeMLP(nn.Module):
    def __init__(self, config: MLPConfig, dims: dict[str, int], num_speakers: int, num_classes: int) -> None:
        super().__init__()
        self.modalities = list(dims)
        width = sum(dims.values())
        blocks: list[nn.Module] = []
        for _ in range(config.layers):
            blocks += [nn.Linear(width, config.hidden), nn.ReLU(), nn.Dropout(config.dropout)]
            width = config.hidden
        self.body = nn.Sequential(*blocks)
        self.speaker_embedding = nn.Embedding(num_speakers, width) if config.use_speaker else None
        self.classifier = EmotionClassifier(width, config.hidden, num_classes, config.dropout)

    def forward(self, batch: BatchLike) -> ModelOutput:
        h = self.body(torch.cat(select_features(batch, self.modalities), dim=-1))
        if self.speaker_embedding is not None:
            h = h + self.speaker_embedding(batch.speakers)
        return ModelOutput(logits=self.classifier(h), representations=h)


class ContextGRU(nn.Module):
    def __init__(self, config: ContextGRUConfig, dims: dict[str, int], num_speakers: int, num_classes: int) -> None:
        super().__init__()
        self.modalities = list(dims)
        self.encoder = ContextEncoder(sum(dims.values()), config.hidden, causal=config.causal, num_layers=config.layers)
        self.speaker_embedding = nn.Embedding(num_speakers, config.hidden) if config.use_speaker else None
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = EmotionClassifier(config.hidden, config.hidden, num_classes, config.dropout)

    def forward(self, batch: BatchLike) -> ModelOutput:
        x = torch.cat(select_features(batch, self.modalities), dim=-1)
        h = self.encoder(x, batch.dialog_index, batch.position, batch.lengths)
        if self.speaker_embedding is not None:
            h = h + self.speaker_embedding(batch.speakers)
        h = self.dropout(h)
        return ModelOutput(logits=self.classifier(h), representations=h)


@register_model("mlp", MLPConfig)
def build_mlp(config: MLPConfig, dims: dict[str, int], num_speakers: int, num_classes: int) -> nn.Module:
    return ContextFreeMLP(config, dims, num_speakers, num_classes)


@register_model("bigru", ContextGRUConfig)
def build_context_gru(config: ContextGRUConfig, dims: dict[str, int], num_speakers: int, num_classes: int) -> nn.Module:
    return ContextGRU(config, dims, num_speakers, num_classes)
