"""The one training loop: epochs, early stopping and the best model, with hooks for what differs.

Like nanoGPT's single loop serving one process and DDP, :func:`run_epochs` is the same code for
``dgnode train`` (:class:`LocalHooks`: a run directory, a progress bar, callbacks), a Ray Train
worker and a Tune trial (:class:`dgnode.training.checkpointing.ReportHooks`: a Ray checkpoint
after every epoch, resumed from it). They differ only in how the :class:`Trainer` was built (a
DDP-wrapped model, the worker's rank) and in the hooks.

Per epoch: train (:meth:`Trainer.train_epoch`), stop on a NaN/inf loss (:class:`TrainingDiverged`),
evaluate valid, step the LR schedule (:meth:`Trainer.step_schedule`), keep the best model by
valid weighted F1, then ``hooks.end_epoch``; a hook raising :class:`StopTraining` (an ASHA-like callback) ends
training after the epoch, and so does the config's patience.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from dgnode.errors import DgnodeError, InputError
from dgnode.tracking.runs import DIAGNOSTIC_PREFIX
from dgnode.training.evaluation import EvalResult, epoch_metrics
from dgnode.training.rundir import RunDir
from dgnode.training.trainer import Trainer

if TYPE_CHECKING:
    from dgnode.storage import Location

__all__ = ["FitResult", "Hooks", "LocalHooks", "StopTraining", "TrainingDiverged", "fit", "run_epochs"]


class StopTraining(Exception):
    """Raised by a hook or callback to end training after the current epoch (e.g. ASHA)."""


class TrainingDiverged(DgnodeError):
    """The training loss became NaN or infinite."""


class Hooks:
    """What a caller of :func:`run_epochs` plugs in; the defaults do nothing."""

    def resume(self, trainer: Trainer) -> list[dict[str, Any]]:
        """Restore ``trainer`` from a checkpoint, if any; returns the history so far."""
        return []

    def new_best(self, trainer: Trainer, valid: EvalResult, epoch: int) -> None:
        """``trainer`` holds the best model so far (after ``epoch``)."""

    def end_epoch(self, trainer: Trainer, metrics: dict[str, Any], history: list[dict[str, Any]]) -> None:
        """After every epoch: report, checkpoint; may raise :class:`StopTraining`."""


@dataclass
class LoopResult:
    history: list[dict[str, Any]]
    stopped: str


def run_epochs(trainer: Trainer, hooks: Hooks, epochs: int | None = None) -> LoopResult:
    """Train ``trainer`` from where ``hooks.resume`` leaves it up to ``epochs`` (default
    ``train.epochs``). The LR schedule steps after each validation. Each epoch's metrics:
    :func:`~dgnode.training.evaluation.epoch_metrics` plus ``best_valid_wf1``, ``best_epoch``,
    ``lr`` (the rate the epoch trained with), ``early_stopped`` (1 when patience ends training
    after this epoch) and ``last`` (1 on the final epoch)."""
    epochs = epochs or trainer.config.train.epochs
    history = list(hooks.resume(trainer))
    stopped = "max_epochs"
    for epoch in range(trainer.epoch, epochs):
        stats = trainer.train_epoch(epoch=epoch)
        if not math.isfinite(stats["train_loss"]):
            raise TrainingDiverged(f"train loss is {stats['train_loss']} at epoch {epoch}: training diverged")
        valid = trainer.evaluate("valid", keep_representations=False)
        lr = trainer.lr  # the rate this epoch trained with; the schedule then sets the next one
        trainer.step_schedule(valid.loss)
        if trainer.update_best(epoch, valid.weighted_f1):
            hooks.new_best(trainer, valid, epoch)
        patience_stop = trainer.should_stop()
        metrics = {**epoch_metrics(epoch, stats, valid, trainer.diagnostics()), "best_valid_wf1": trainer.best_valid_wf1,
                   "best_epoch": trainer.best_epoch, "lr": lr, "early_stopped": int(patience_stop),
                   "last": int(patience_stop or epoch == epochs - 1)}
        history.append(metrics)
        try:
            hooks.end_epoch(trainer, dict(metrics), history)
        except StopTraining as stop:
            stopped = f"callback: {stop}" if str(stop) else "callback"
            break
        if patience_stop:
            stopped = f"early stopping (patience {trainer.config.train.patience})"
            break
    return LoopResult(history, stopped)


class LocalHooks(Hooks):
    """``dgnode train``: ``best.pt`` and ``history.json`` in the run directory, a progress bar,
    and ``callbacks(epoch, metrics)`` after each epoch (one may raise :class:`StopTraining`)."""

    REPORTED = ("epoch", "train_loss", "valid_wf1", "valid_acc", "valid_loss", "nfe", "epoch_time")

    def __init__(self, run: RunDir, callbacks: Sequence[Callable[[int, dict], None]] = (), progress: bool = True,
                 total: int = 0, name: str = "") -> None:
        from dgnode.reporting.progress import progress_bar

        self.run, self.callbacks = run, list(callbacks)
        self.bar = progress_bar(total=total, desc=f"train {name}", unit="epoch", enabled=progress)

    @classmethod
    def reported(cls, metrics: dict[str, Any]) -> dict[str, Any]:
        """The metrics a local run keeps: :attr:`REPORTED` and the model's diagnostics."""
        return {k: v for k, v in metrics.items() if k in cls.REPORTED or k.startswith(DIAGNOSTIC_PREFIX)}

    def new_best(self, trainer: Trainer, valid: EvalResult, epoch: int) -> None:
        self.run.save_model(trainer.model_state(valid=valid.summary(), best_epoch=epoch))

    def end_epoch(self, trainer: Trainer, metrics: dict[str, Any], history: list[dict[str, Any]]) -> None:
        self.run.write_history([self.reported(h) for h in history])
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{metrics['train_loss']:.3f}", valid_wf1=f"{metrics['valid_wf1']:.3f}",
                             best=trainer.best_epoch)
        for callback in self.callbacks:
            callback(metrics["epoch"], self.reported(metrics))

    def close(self) -> None:
        self.bar.close()


@dataclass
class FitResult:
    """Outcome of :func:`fit`; ``report`` is what the run directory's report holds."""

    out_dir: str  # the run directory: an absolute local path or an s3:// URI
    best_epoch: int
    best_valid_wf1: float
    epochs_run: int
    stopped: str
    history: list[dict[str, float]]
    test: EvalResult | None
    report: dict[str, Any] = field(default_factory=dict)

    def final_metrics(self) -> dict[str, Any]:
        """The run in one JSON-able line (the last stdout line of ``dgnode train``)."""
        final = {"out_dir": str(self.out_dir), "model": self.report.get("model"), "best_epoch": self.best_epoch,
                 "epochs_run": self.epochs_run, "stopped": self.stopped, "best_valid_weighted_f1": self.best_valid_wf1}
        if self.test is not None:
            final.update(test_weighted_f1=self.test.weighted_f1, test_accuracy=self.test.accuracy,
                         test_per_class_f1=self.test.per_class_f1)
        return final


def fit(config: Any, data: Any, out_dir: "str | Path | Location", callbacks: Sequence[Callable[[int, dict], None]] = (),
        progress: bool = True) -> FitResult:
    """Train in this process with early stopping on valid weighted F1, then test the best
    checkpoint once. Writes the run directory (:class:`~dgnode.training.rundir.RunDir`): config,
    best model, history, report and figures."""
    import time

    from dgnode.training.best import restore_best
    from dgnode.training.report import build_report, write_run_outputs

    if not data.split("valid"):
        raise InputError("the data has no valid dialogues: early stopping and checkpoint selection need a valid split",
                         path=config.data.store)
    run = RunDir(out_dir)
    run.write_config(config)
    started = time.perf_counter()
    trainer = Trainer(config, data)
    hooks = LocalHooks(run, callbacks, progress, total=config.train.epochs, name=config.model.name)
    try:
        loop = run_epochs(trainer, hooks)
    finally:
        hooks.close()
    history = [LocalHooks.reported(h) for h in loop.history]
    restore_best(trainer, run.load_model(trainer.device))
    test = trainer.evaluate("test") if data.split("test") else None
    report = build_report(config=config, data=data, trainer=trainer, history=history, test=test, stopped=loop.stopped,
                          out_dir=run.uri, train_time_s=time.perf_counter() - started)
    write_run_outputs(report, test, data.label_names, config, run)
    return FitResult(out_dir=run.uri, best_epoch=trainer.best_epoch, best_valid_wf1=trainer.best_valid_wf1,
                     epochs_run=len(history), stopped=loop.stopped, history=history, test=test, report=report)
