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
directory with ``state.pt`` (resume) and ``best.pt`` (the best model so far, evaluated on the test
split at the end of the search). A NaN/inf training loss raises :class:`TrainingDiverged`; the NFE
cap raises :class:`~dgnode.models.graph_ode.NFECapExceeded`; either fails the trial (Tune marks
it ERROR, MLflow FAILED) and the search goes on.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

from dgnode.training.distributed import BEST_FILE, HISTORY_FILE, STATE_FILE, TrainingDiverged


def single_process_trial(
    params: dict[str, Any],
    *,
    data: Any,
    base_config: Any,
    space: Any,
    epochs: int,
    device: str = "cpu",
) -> None:
    """Train one sampled configuration in this process, reporting every epoch to Tune."""
    import ray.tune
    import torch

    from dgnode.training.trainer import Trainer, epoch_metrics

    config = space.config_for(base_config, params)
    trainer = Trainer(config, data, device=device)
    scratch = Path(tempfile.mkdtemp(prefix="dgnode-trial-"))
    history: list[dict[str, float]] = []
    try:
        checkpoint = ray.tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as directory:
                trainer.load_state_dict(torch.load(Path(directory) / STATE_FILE, map_location=trainer.device, weights_only=True))
                history = json.loads((Path(directory) / HISTORY_FILE).read_text())
                if (Path(directory) / BEST_FILE).exists():
                    shutil.copy2(Path(directory) / BEST_FILE, scratch / BEST_FILE)
        for epoch in range(trainer.epoch, epochs):
            stats = trainer.train_epoch(epoch=epoch)
            if not math.isfinite(stats["train_loss"]):
                raise TrainingDiverged(f"train loss is {stats['train_loss']} at epoch {epoch}: training diverged")
            valid = trainer.evaluate("valid", keep_representations=False)
            if trainer.update_best(epoch, valid.weighted_f1):
                trainer.save_model(scratch / BEST_FILE, extra={"valid": valid.summary(), "best_epoch": epoch})
            metrics = {**epoch_metrics(epoch, stats, valid),
                       "best_valid_wf1": trainer.best_valid_wf1, "best_epoch": trainer.best_epoch}
            stop = trainer.should_stop()
            metrics["early_stopped"] = int(stop)
            history.append(metrics)
            with tempfile.TemporaryDirectory(prefix="dgnode-ckpt-") as directory:
                torch.save(trainer.state_dict(), Path(directory) / STATE_FILE)
                if (scratch / BEST_FILE).exists():
                    shutil.copy2(scratch / BEST_FILE, Path(directory) / BEST_FILE)
                (Path(directory) / HISTORY_FILE).write_text(json.dumps(history))
                # Blocks until Tune has taken the result; an ASHA stop ends this thread here.
                ray.tune.report(metrics, checkpoint=ray.tune.Checkpoint.from_directory(directory))
            if stop:
                break
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def distributed_trial(
    params: dict[str, Any],
    *,
    base_config: Any,
    space: Any,
    epochs: int,
    store: str,
    num_workers: int,
    gpus_per_worker: float,
    cpus_per_worker: float,
    storage_path: str,
) -> None:
    """Train one sampled configuration on ``num_workers`` Ray Train workers (DDP).

    Every epoch but the last reaches Tune through ``TuneReportCallback``; the last one is
    reported by this function after ``TorchTrainer.fit`` has returned. Tune stops a trial at its
    last time step (ASHA's ``max_t``) by ending its actor; reporting the last epoch from here means
    that stop comes after Ray Train has shut its worker group down and released its placement
    group, instead of killing a run that is still finishing. (A trial ASHA stops at an earlier
    rung is torn down mid-run; Ray Train's placement-group cleaner then releases the workers'
    resources, which needs the Ray state API, i.e. the dashboard of ``ray[default]``.)
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
        max_failures=0,
    )
    result = run_distributed(config, settings, store=store, callbacks=[_tune_report_until_last()], epochs=epochs)
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
