"""Pieces every conversation model shares: the output record, the config base, the head,
and the padded <-> flat layout of a batch of dialogues (the context GRUs are in
:mod:`dgnode.models.recurrence`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn


class BatchLike(Protocol):
    """What a model reads from :class:`dgnode.features.dataset.ConversationBatch`."""

    features: dict[str, Tensor]  # modality -> (N, dim)
    speakers: Tensor  # (N,) long
    dialog_index: Tensor  # (N,) long
    position: Tensor  # (N,) long
    lengths: Tensor  # (B,) long


@dataclass
class ModelOutput:
    """What a model returns for a batch of ``N`` utterances.

    Attributes:
        logits: ``(N, C)`` unnormalised class scores.
        representations: ``(N, D)`` the utterance vectors fed to the classifier (for t-SNE).
        nfe: ODE function evaluations of this forward pass (0 for models without an ODE).
    """

    logits: Tensor
    representations: Tensor | None = None
    nfe: int = 0


@dataclass
class ModelConfig:
    """Fields every model has. Each model subclasses this with its own fields; ``name`` picks
    the model in :func:`dgnode.models.registry.build_model`."""

    name: str = "dgode"
    hidden: int = 512
    dropout: float = 0.5
    use_speaker: bool = True

    def __post_init__(self) -> None:
        if self.hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {self.hidden}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class EmotionClassifier(nn.Module):
    """``l_i = ReLU(W_l h_i + b_l)``, ``logits_i = W_s l_i + b_s`` (softmax lives in the loss).

    Shapes: ``(N, in_features) -> (N, num_classes)``.
    """

    def __init__(self, in_features: int, hidden: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.hidden_layer = nn.Linear(in_features, hidden)
        self.dropout = nn.Dropout(dropout)
        self.output_layer = nn.Linear(hidden, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.output_layer(self.dropout(torch.relu(self.hidden_layer(x))))


def to_padded(x: Tensor, dialog_index: Tensor, position: Tensor, lengths: Tensor) -> Tensor:
    """Flat rows ``(N, d)`` -> zero-padded ``(B, L_max, d)`` with row ``i`` at
    ``[dialog_index[i], position[i]]``."""
    padded = x.new_zeros(int(lengths.numel()), int(lengths.max()), x.shape[-1])
    padded[dialog_index, position] = x
    return padded


def from_padded(padded: Tensor, dialog_index: Tensor, position: Tensor) -> Tensor:
    """Inverse of :func:`to_padded`: ``(B, L_max, d)`` -> ``(N, d)``."""
    return padded[dialog_index, position]


def select_features(batch: BatchLike, modalities: list[str]) -> list[Tensor]:
    """The batch's feature matrices of ``modalities``, with a clear error when one is absent."""
    missing = [m for m in modalities if m not in batch.features]
    if missing:
        raise KeyError(f"batch lacks modalities {missing}; it has {list(batch.features)}")
    return [batch.features[m] for m in modalities]
