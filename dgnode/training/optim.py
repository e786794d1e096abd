"""The optimiser and its learning-rate schedule, built from :class:`~dgnode.training.config.OptimConfig`.

Adam with L2 ``weight_decay`` on the weight matrices only, unless ``decay_1d`` (then on every
parameter, the behaviour before the option existed): 1-d parameters (biases, normalisation
scales, MixHop's hop logits, the graph ODE's eigenvalue logits) form a second group without
decay. The schedule steps once per epoch, after validation (:func:`step_schedule`, called by
:func:`dgnode.training.loop.run_epochs`): ``plateau`` on the valid loss, ``cosine`` on the
epoch count.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dgnode.training.config import OptimConfig

__all__ = ["build_optimizer", "build_schedule", "step_schedule"]


def build_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.Adam:
    """Adam over ``model``'s trainable parameters, in one group (``decay_1d``) or two (matrices
    with ``weight_decay``, 1-d parameters without)."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    if config.decay_1d:
        groups: list[dict[str, Any]] = [{"params": parameters, "weight_decay": config.weight_decay}]
    else:
        groups = [
            {"params": [p for p in parameters if p.ndim >= 2], "weight_decay": config.weight_decay},
            {"params": [p for p in parameters if p.ndim < 2], "weight_decay": 0.0},
        ]
    return torch.optim.Adam([g for g in groups if g["params"]], lr=config.lr)


def build_schedule(optimizer: torch.optim.Optimizer, config: OptimConfig, epochs: int) -> Any:
    """The ``optim.schedule`` scheduler of ``optimizer`` (``None`` for ``none``)."""
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=config.plateau_factor, patience=config.plateau_patience)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    return None


def step_schedule(schedule: Any, valid_loss: float) -> None:
    """One end-of-epoch step: ReduceLROnPlateau reads the valid loss, the others count epochs."""
    if schedule is None:
        return
    if isinstance(schedule, torch.optim.lr_scheduler.ReduceLROnPlateau):
        schedule.step(valid_loss)
    else:
        schedule.step()
