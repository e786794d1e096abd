"""The training loop's hooks under Ray: a checkpoint after every epoch, resumed from the last one.

Ray Train workers (``ray.train.report``) and Tune trials (``ray.tune.report``) differ only in
the report function and the checkpoint class, so one :class:`ReportHooks` serves both. Every
checkpoint is a run directory (:class:`~dgnode.training.rundir.RunDir`) holding ``state.pt``
(model, optimiser, epoch and early-stopping state: resume), the best model so far (tested at the
end) and the history. Only rank 0 writes checkpoints; every rank reports (Ray Train needs each
worker's report, Tune has one worker). Relaunching a Ray Train run under the same name, a worker
group restart, or a resumed Tune trial continues from the last checkpoint, and the per-epoch seeds
make the resumed epochs the ones an uninterrupted run would have drawn.

Where checkpoints go is the run's ``storage_path`` (Ray uploads each one there from the worker
that reported it): on a cluster an ``s3://`` prefix, so a trial or worker group restarted on
another node after a node failure resumes from the same checkpoint. :func:`checkpoint_uri` names a
Ray checkpoint the way the rest of dgnode names locations.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any, Callable

from dgnode.training.evaluation import EvalResult
from dgnode.training.loop import Hooks
from dgnode.training.rundir import RunDir
from dgnode.training.trainer import Trainer

__all__ = ["ReportHooks", "checkpoint_uri", "train_hooks", "tune_hooks"]


class ReportHooks(Hooks):
    """Report every epoch with a checkpoint through ``report(metrics, checkpoint=...)``.

    ``get_checkpoint()`` returns the checkpoint to resume from (or ``None``); ``checkpoint_class``
    has ``from_directory``. ``keep_last_flag`` keeps the ``last`` key in the reported metrics
    (a Tune function wrapping a Ray Train run uses it, see :mod:`dgnode.tuning.trainable`).
    """

    def __init__(self, report: Callable[..., None], get_checkpoint: Callable[[], Any], checkpoint_class: Any,
                 rank: int = 0, keep_last_flag: bool = False) -> None:
        self.report, self.get_checkpoint, self.checkpoint_class = report, get_checkpoint, checkpoint_class
        self.rank, self.keep_last_flag = rank, keep_last_flag
        self.scratch = RunDir(tempfile.mkdtemp(prefix=f"dgnode-rank{rank}-"))

    def resume(self, trainer: Trainer) -> list[dict[str, Any]]:
        checkpoint = self.get_checkpoint()
        if checkpoint is None:
            return []
        with checkpoint.as_directory() as directory:
            saved = RunDir(directory)
            trainer.load_state_dict(saved.load_state(trainer.device))
            saved.copy_best_to(self.scratch)
            return saved.read_history()

    def new_best(self, trainer: Trainer, valid: EvalResult, epoch: int) -> None:
        if self.rank == 0:
            self.scratch.save_model(trainer.model_state(valid=valid.summary(), best_epoch=epoch))

    def end_epoch(self, trainer: Trainer, metrics: dict[str, Any], history: list[dict[str, Any]]) -> None:
        if not self.keep_last_flag:
            metrics.pop("last", None)
        if self.rank != 0:
            self.report(metrics)
            return
        with tempfile.TemporaryDirectory(prefix="dgnode-ckpt-") as directory:
            checkpoint = RunDir(directory)
            checkpoint.save_state(trainer.state_dict())
            self.scratch.copy_best_to(checkpoint)
            checkpoint.write_history(history)
            # Blocks until Ray has taken the checkpoint; an ASHA stop ends a Tune trial here.
            self.report(metrics, checkpoint=self.checkpoint_class.from_directory(directory))

    def close(self) -> None:
        shutil.rmtree(self.scratch.path, ignore_errors=True)


def train_hooks(rank: int) -> ReportHooks:
    """Hooks of a Ray Train worker."""
    import ray.train

    return ReportHooks(ray.train.report, ray.train.get_checkpoint, ray.train.Checkpoint, rank=rank, keep_last_flag=True)


def tune_hooks() -> ReportHooks:
    """Hooks of a one-process Tune trial."""
    import ray.tune

    return ReportHooks(ray.tune.report, ray.tune.get_checkpoint, ray.tune.Checkpoint)


def checkpoint_uri(checkpoint: Any) -> str:
    """A Ray ``Checkpoint``'s location as dgnode names it: ``s3://bucket/key`` for one in S3 (Ray
    keeps the path without its scheme beside the filesystem), else its local path."""
    filesystem = getattr(checkpoint, "filesystem", None)
    if filesystem is not None and filesystem.type_name == "s3":
        return "s3://" + checkpoint.path.lstrip("/")
    return checkpoint.path
