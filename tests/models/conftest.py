"""Tiny hand-made conversations for model tests (no feature store needed)."""

from __future__ import annotations

from typing import Callable

import pytest
import torch

from dgnode.features.dataset import Conversation, ConversationBatch, collate

DIMS = {"text": 6, "audio": 5, "vision": 4}


def make_conversations(lengths: list[int], dims: dict[str, int] = DIMS, seed: int = 0,
                       num_speakers: int = 2, num_classes: int = 3) -> list[Conversation]:
    generator = torch.Generator().manual_seed(seed)
    conversations = []
    for index, length in enumerate(lengths):
        conversations.append(
            Conversation(
                dialog_id=f"d{index}",
                split="train",
                utt_ids=[f"d{index}_u{j}" for j in range(length)],
                features={m: torch.randn(length, dim, generator=generator) for m, dim in dims.items()},
                speakers=torch.randint(0, num_speakers, (length,), generator=generator),
                labels=torch.randint(0, num_classes, (length,), generator=generator),
            )
        )
    return conversations


@pytest.fixture
def conversations() -> Callable[..., list[Conversation]]:
    return make_conversations


@pytest.fixture
def batch() -> ConversationBatch:
    return collate(make_conversations([5, 3, 7]))
