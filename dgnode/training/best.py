"""The best checkpoint of a run: restore it, and test it once and register it.

``dgnode train`` (:func:`dgnode.training.loop.fit`), a Ray Train run
(:func:`dgnode.training.distributed.train_and_track`) and a search
(:func:`dgnode.tuning.search.run_search`) all end the same way: the model of the best valid epoch
is evaluated on the test split exactly once, and (when tracked) its evaluations are logged and the
model registered in MLflow by :func:`evaluate_and_register`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dgnode.errors import InputError
from dgnode.training.rundir import RunDir
from dgnode.training.trainer import Trainer

__all__ = ["BestModel", "load_run", "restore_best", "evaluate_and_register"]


def restore_best(trainer: Trainer, state: dict[str, Any]) -> None:
    """Load a best-model state (``RunDir.load_model``) into ``trainer`` and its early-stopping
    record (``best_epoch``, the valid score), checking dims and labels."""
    trainer.load_state_dict(state)
    if "best_epoch" in state:
        trainer.best_epoch = int(state["best_epoch"])
    if state.get("valid"):
        trainer.best_valid_wf1 = float(state["valid"]["weighted_f1"])


def load_run(run_dir: str | Path, store: str | None = None, device: str | None = None) -> tuple[Trainer, Any]:
    """A :class:`Trainer` holding the best model of a finished run; ``store`` overrides the
    feature store its config names. The features are normalised with the checkpoint's statistics,
    never refitted (:func:`dgnode.training.provenance.reload_data`)."""
    from dgnode.training.provenance import reload_data

    run = RunDir(run_dir)
    run.require_finished()
    config = run.read_config({"data.store": store} if store else None)
    if config.data.store is None:
        raise InputError("the run's config names no data.store; pass --store", path=str(run.config_path))
    state = run.load_model("cpu")
    data = reload_data(config.data.store, state, config)
    trainer = Trainer(config, data, device=device)
    trainer.load_state_dict(state)
    return trainer, config


@dataclass
class BestModel:
    """What :func:`evaluate_and_register` returns: test metrics (empty without a test split), the
    registered model's URI and version."""

    test: dict[str, Any]
    model_uri: str | None
    model_version: str | None


def evaluate_and_register(config: Any, data: Any, state: dict[str, Any], run: Any, registered_name: str,
                      device: str = "cpu", log_valid_metrics: bool = True) -> BestModel:
    """Evaluate the best model ``state`` on the test split once, log the valid and test
    evaluations to the MLflow ``run`` (:class:`dgnode.tracking.runs.TrackedRun`) and register the
    model under ``registered_name``."""
    trainer = Trainer(config, data, device=device)
    restore_best(trainer, state)
    run.log_metrics({"best_epoch": float(state.get("best_epoch", -1))})
    if state.get("valid"):
        run.log_evaluation(state["valid"], data.label_names, split="valid", log_metrics=log_valid_metrics)
    test = trainer.evaluate("test", keep_representations=False).summary() if data.split("test") else {}
    if test:
        run.log_evaluation(test, data.label_names, split="test")
    model_uri, version = run.log_model(config, state, data.normalisation, registered_name=registered_name)
    return BestModel(test, model_uri, version)
