"""Training: one loop for one process, Ray Train workers and Tune trials.

* :mod:`~dgnode.training.config`: :class:`TrainConfig` (every training option, declared once);
* :mod:`~dgnode.training.trainer`: :class:`Trainer`, the epoch step and evaluation;
* :mod:`~dgnode.training.optim`: the optimiser's parameter groups and the LR schedule;
* :mod:`~dgnode.training.provenance`: what a checkpoint records about its inputs, and reloading;
* :mod:`~dgnode.training.loop`: :func:`run_epochs` with hooks, :func:`fit` (``dgnode train``);
* :mod:`~dgnode.training.checkpointing`: the hooks under Ray Train and Tune;
* :mod:`~dgnode.training.distributed`: Ray Train runs (:func:`train_and_track`);
* :mod:`~dgnode.training.best`: the best checkpoint, tested once and registered;
* :mod:`~dgnode.training.rundir`: the files of a run directory.

Names resolve lazily (PEP 562), so ``dgnode --help`` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "config", "load_train_config": "config",
    "Trainer": "trainer", "EvalResult": "evaluation",
    "FitResult": "loop", "Hooks": "loop", "StopTraining": "loop", "TrainingDiverged": "loop", "fit": "loop",
    "run_epochs": "loop",
    "load_run": "best", "evaluate_and_register": "best",
    "StoreChangedWarning": "provenance", "reload_data": "provenance",
    "DistributedSettings": "distributed", "run_distributed": "distributed", "train_and_track": "distributed",
    "RunDir": "rundir",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dgnode.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f"dgnode.training.{_EXPORTS[name]}"), name)
