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

from dgnode.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "dgnode.training.config": ("TrainConfig", "load_train_config"),
    "dgnode.training.trainer": ("Trainer",),
    "dgnode.training.evaluation": ("EvalResult",),
    "dgnode.training.loop": ("FitResult", "Hooks", "StopTraining", "TrainingDiverged", "fit", "run_epochs"),
    "dgnode.training.best": ("load_run", "evaluate_and_register"),
    "dgnode.training.provenance": ("StoreChangedWarning", "reload_data"),
    "dgnode.training.distributed": ("DistributedSettings", "run_distributed", "train_and_track"),
    "dgnode.training.rundir": ("RunDir",),
})
