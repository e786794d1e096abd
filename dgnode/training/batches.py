"""Which dialogues each step trains on, for one process or ``W`` data-parallel workers.

Per epoch the permutation ``randperm(n_train)`` is drawn from a generator seeded with
``(seed, "shuffle", epoch)`` and cut into global batches ``B_1, B_2, ...`` of ``batch_size``
dialogues. Every worker draws the *same* permutation; worker ``r`` of ``W`` takes the ``r``-th
contiguous slice ``B^r`` of each global batch (dialogues are never split: the graph is per
dialogue). With ``W = 1`` the slice is the batch. The loss normalisation that makes ``W`` workers
take the single-process step is in :meth:`dgnode.training.trainer.Trainer.train_epoch`.
"""

from __future__ import annotations

from typing import Sequence

from dgnode.training.reproducibility import derive_seed

__all__ = ["epoch_batches", "shard_of_batch"]


def epoch_batches(num_dialogues: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Indices of the global batches of ``epoch`` (same for every worker and every resume)."""
    import torch

    generator = torch.Generator().manual_seed(derive_seed(seed, "shuffle", epoch))
    order = torch.randperm(num_dialogues, generator=generator).tolist()
    return [order[start : start + batch_size] for start in range(0, num_dialogues, batch_size)]


def shard_of_batch(batch: Sequence[int], rank: int, world_size: int) -> list[int]:
    """Worker ``rank``'s contiguous slice of a global batch; slice sizes differ by at most one
    and the slices, in rank order, concatenate to the batch."""
    size = len(batch)
    start, stop = rank * size // world_size, (rank + 1) * size // world_size
    return list(batch[start:stop])
