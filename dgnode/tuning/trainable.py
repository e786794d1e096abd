"""The Tune trial functions: one epoch = one ``ray.tune.report`` = one ASHA time step.

Two shapes, picked by ``--workers-per-trial``:

* **one worker** (:func:`single_process_trial`): the trial runs the :class:`Trainer` directly in
  its Tune actor and reports each epoch with ``ray.tune.report``. No Ray Train controller or
  process group per trial, which on small models is most of a trial's cost; the data set is
  shipped once through the object store (``tune.with_parameters``) instead of being re-read
  from the feature store by every trial.
* **W > 1 workers** (:func:`distributed_trial`): Ray Train V2's pattern: the Tune function
  launches a ``TorchTrainer`` (:func:`dgnode.training.distributed.run_distributed`) whose
  ``TuneReportCallback`` forwards rank 0's per-epoch reports to Tune (all but the last epoch's,
  which the function reports itself once the trainer has finished; see
  :func:`distributed_trial`). The Train run is named after the trial, so a resumed search
  resumes the trial from its last Train checkpoint.

Both report the same metrics (``epoch``, ``train_loss``, ``valid_wf1``, ``valid_acc``,
``valid_loss``, ``nfe``, ``epoch_time``, ``best_valid_wf1``, ``best_epoch``, and ``early_stopped``
= 1 when the trial's own patience ends it after this epoch) and keep a checkpoint
directory (:class:`~dgnode.training.rundir.RunDir`: the resume state and the best model so far,
evaluated on the test split at the end of the search). A NaN/inf training loss raises
:class:`~dgnode.training.loop.TrainingDiverged`; the NFE cap raises :class:`~dgnode.models.graph_ode.NFECapExceeded`; either fails the trial (Tune marks
it ERROR, MLflow FAILED) and the search goes on.
"""

from __future__ import annotations

from typing import Any

__all__ = ["distributed_trial", "single_process_trial"]


def single_process_trial(
    params: dict[str, Any],
    *,
    data: Any,
    base_config: Any,
    space: Any,
    epochs: int,
    device: str = "cpu",
) -> None:
    """Train one sampled configuration in this process with the one training loop
    (:func:`dgnode.training.loop.run_epochs`), reporting every epoch to Tune."""
    from dgnode.training.checkpointing import tune_hooks
    from dgnode.training.loop import run_epochs
    from dgnode.training.trainer import Trainer

    trainer = Trainer(space.config_for(base_config, params), data, device=device)
    hooks = tune_hooks()
    try:
        run_epochs(trainer, hooks, epochs)
    finally:
        hooks.close()


def distributed_trial(
    params: dict[str, Any],
    *,
    base_config: Any,
    space: Any,
    epochs: int,
    num_workers: int,
    gpus_per_worker: float,
    cpus_per_worker: float,
    storage_path: str,
    max_failures: int = 0,
) -> None:
    """Train one sampled configuration on ``num_workers`` Ray Train workers (DDP).

    Every epoch but the last reaches Tune through ``TuneReportCallback``; the last one is
    reported by this function after ``TorchTrainer.fit`` has returned. Tune stops a trial at its
    last time step (ASHA's ``max_t``) by ending its actor; reporting the last epoch from here means
    that stop comes after Ray Train has shut its worker group down and released its placement
    group, instead of killing a run that is still finishing. (A trial ASHA stops at an earlier
    rung is torn down mid-run; Ray Train's placement-group cleaner then releases the workers'
    resources, which needs the Ray state API, i.e. the dashboard of ``ray[default]``.)

    ``storage_path`` (a path or an ``s3://`` URI) holds the Train run's checkpoints; a worker lost
    with its node restarts the worker group from the last of them up to ``max_failures`` times.
    """
    import ray.tune

    from dgnode.training.distributed import DistributedSettings, run_distributed

    config = space.config_for(base_config, params)
    settings = DistributedSettings(
        num_workers=num_workers,
        gpus_per_worker=gpus_per_worker,
        cpus_per_worker=cpus_per_worker,
        storage_path=storage_path,
        name=f"trial-{ray.tune.get_context().get_trial_id()}",
        max_failures=max_failures,
    )
    result = run_distributed(config, settings, callbacks=[_tune_report_until_last()], epochs=epochs)
    if result.history:
        last = {k: v for k, v in result.history[-1].items() if k != "last"}
        ray.tune.report({**last, "checkpoint_path": result.checkpoint_path})


def _tune_report_until_last():
    from ray.tune.integration.ray_train import TuneReportCallback

    class TuneReportUntilLast(TuneReportCallback):
        """Forwards rank 0's reports to Tune, except the one marked ``last``."""

        def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
            if metrics and metrics[0].get("last"):
                return
            super().after_report(run_context, metrics, checkpoint)

    return TuneReportUntilLast()
