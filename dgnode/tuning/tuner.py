"""The Tune experiment of a search: trainable, searcher, scheduler, callbacks (new or restored).

A new search: ``OptunaSearch`` (seeded TPE, warm-started from the space's points) under a
``ConcurrencyLimiter``, ASHA on ``valid_wf1`` per epoch, and the driver-side callbacks (MLflow runs,
the trial ledger, progress, bounded sessions). A resumed one: ``Tuner.restore`` with the same
trainable, which brings back the searcher, scheduler and callbacks from the saved experiment.

Storage: the experiment lives under the search directory ``OUT`` (a local path or an ``s3://``
prefix; :meth:`dgnode.storage.Location.ray_storage` gives Ray its ``storage_path`` and
``storage_filesystem``), and so do the checkpoints every trial uploads from its node (which of
them a search in S3 keeps: :mod:`dgnode.tuning.retention`). Failures:
``FailureConfig(max_failures=settings.max_failures)``: a trial whose actor dies (its node was lost)
or that raises is restarted from its last checkpoint that many times before it counts as failed;
multi-worker trials pass the same number to their Ray Train run, whose worker group restarts from
its own last checkpoint when a worker's node is lost.
"""

from __future__ import annotations

import os
from typing import Any

from dgnode.tuning.callbacks import SessionStop, TrialLedger, TrialProgress
from dgnode.tuning.capacity import CapacityWatch
from dgnode.tuning.results import SELECTION_METRIC
from dgnode.tuning.retention import CheckpointRetention, use_fixed_snapshot_period
from dgnode.tuning.settings import TuneSettings

__all__ = ["TUNE_NAME", "build_tuner"]

TUNE_NAME = "search"
TRAIN_STORAGE = "train"
METRIC = "valid_wf1"


def build_tuner(out: Any, base_config, space, data, settings, epochs, uri, experiment_id, parent_run_id,
               tags, resume, progress):
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from dgnode.tuning.mlflow_callback import MLflowTrialCallback
    from dgnode.tuning.trainable import distributed_trial, single_process_trial

    if out.is_remote:
        # A known snapshot period: CheckpointRetention deletes a superseded checkpoint only once a
        # snapshot naming a newer one must have been saved (dgnode.tuning.retention).
        use_fixed_snapshot_period()
    else:
        # Deleting old checkpoints forces an experiment snapshot; with epochs of seconds Tune warns
        # about the snapshot rate at every epoch. The snapshots are what make resuming exact.
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if settings.workers_per_trial == 1:
        trainable = tune.with_resources(
            tune.with_parameters(single_process_trial, data=data, base_config=base_config, space=space, epochs=epochs,
                                 device="cuda" if settings.gpus_per_worker > 0 else "cpu"),
            {"cpu": settings.cpus_per_worker, "gpu": settings.gpus_per_worker},
        )
    else:
        # The Tune function only waits on its TorchTrainer, whose workers hold the real resources;
        # a token CPU share (Tune refuses an empty request) keeps it from taking a worker's core.
        trainable = tune.with_resources(
            tune.with_parameters(distributed_trial, base_config=base_config, space=space, epochs=epochs,
                                 num_workers=settings.workers_per_trial, gpus_per_worker=settings.gpus_per_worker,
                                 cpus_per_worker=settings.cpus_per_worker, storage_path=(out / TRAIN_STORAGE).uri,
                                 max_failures=settings.max_failures),
            {"cpu": 0.01},
        )
    storage_path, storage_filesystem = out.ray_storage()
    experiment_path, _ = (out / TUNE_NAME).ray_storage()
    if resume and tune.Tuner.can_restore(experiment_path, storage_filesystem=storage_filesystem):
        tuner = tune.Tuner.restore(experiment_path, trainable, resume_unfinished=True, resume_errored=False,
                                   restart_errored=False, storage_filesystem=storage_filesystem)
    else:
        searcher = OptunaSearch(
            metric=SELECTION_METRIC,
            mode="max",
            sampler=optuna.samplers.TPESampler(seed=settings.seed),
            points_to_evaluate=[dict(p) for p in space.points_to_evaluate] or None,
        )
        callback = MLflowTrialCallback(uri, experiment_id, parent_run_id, _ConfigResolver(base_config, space),
                                       max_epochs=epochs, tags=tags)
        tuner = tune.Tuner(
            trainable,
            param_space=space.tune_param_space(),
            tune_config=tune.TuneConfig(
                num_samples=settings.trials,
                search_alg=ConcurrencyLimiter(searcher, max_concurrent=settings.max_concurrent),
                scheduler=ASHAScheduler(metric=METRIC, mode="max", time_attr="training_iteration", max_t=epochs,
                                        grace_period=min(settings.grace_period, epochs),
                                        reduction_factor=settings.reduction_factor),
                reuse_actors=settings.workers_per_trial == 1,
            ),
            run_config=tune.RunConfig(
                name=TUNE_NAME,
                storage_path=storage_path,
                storage_filesystem=storage_filesystem,
                failure_config=tune.FailureConfig(max_failures=settings.max_failures, fail_fast=False),
                # Every checkpoint holds state.pt (resume) and best.pt (test), so the latest is
                # enough; with num_to_keep=1 each deletion would force an experiment snapshot. In
                # S3 Tune deletes none itself: it would delete one its saved experiment state may
                # still name; CheckpointRetention does, later (dgnode.tuning.retention).
                checkpoint_config=tune.CheckpointConfig(num_to_keep=None if out.is_remote else 2),
                callbacks=[callback, TrialLedger(), TrialProgress(settings.trials, progress), SessionStop(), CapacityWatch(),
                           *([CheckpointRetention()] if out.is_remote else [])],
                verbose=0,
            ),
        )
    return tuner


class _ConfigResolver:
    """Picklable ``trial config -> full TrainConfig`` (travels with the Tune experiment state)."""

    def __init__(self, base_config: Any, space: Any) -> None:
        self.base_config, self.space = base_config, space

    def __call__(self, params: dict[str, Any]) -> Any:
        return self.space.config_for(self.base_config, params)
