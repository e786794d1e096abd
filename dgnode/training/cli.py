"""``dgnode train``, ``dgnode evaluate`` and ``dgnode models``.

``dgnode train --data.store S --out DIR [--config YAML] [--optim.lr 3e-4 ...]`` trains, tests the best
checkpoint once, prints a summary table and, as the last line of stdout, the final metrics as
JSON. ``dgnode evaluate --run DIR [--split test]`` re-evaluates the run's best checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from dgnode.command import Command
from dgnode.training.config import TrainConfig
from dgnode.training.settings import DistributedSettings

__all__ = [
    "COMMANDS", "EvaluateOptions", "ModelsOptions", "RayTrainOptions", "TrainOptions", "run_evaluate",
    "run_models", "run_train", "run_train_ray",
]


@dataclass
class TrainOptions:
    """Train with early stopping on valid weighted F1, then evaluate the best checkpoint on test once.

    Attributes:
        out: run directory for config.yaml, best.pt, report.json and the figures (a path or s3://bucket/prefix)
        progress: show a progress bar
    """

    out: str
    progress: bool = True


@dataclass
class EvaluateOptions:
    """Load a finished run's config and best checkpoint, evaluate one split, print the metrics.

    Attributes:
        run: run directory written by `dgnode train` (a path or s3://bucket/prefix)
        split: which split to evaluate
        store: feature store to use instead of the one in the run's config
        device: device (default: the run's train.device)
    """

    run: str
    split: Literal["train", "valid", "test"] = "test"
    store: str | None = None
    device: str | None = None


@dataclass
class RayTrainOptions(DistributedSettings):
    """Train on Ray Train workers (DDP), tracked in MLflow: per-epoch metrics, then the best
    checkpoint tested once and the model registered. The same --storage_path and --name resume.

    Attributes:
        tracking_uri: MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)
        experiment: MLflow experiment
        registered_model: registered model name (default: the experiment name)
    """

    tracking_uri: str | None = None
    experiment: str = "dgnode-train"
    registered_model: str | None = None


@dataclass
class ModelsOptions:
    """List the registered models and every option of each, with its default."""


def run_train(options: TrainOptions, config: TrainConfig) -> int:
    from rich.console import Console

    from dgnode.errors import InputError
    from dgnode.features.dataset import load_conversations
    from dgnode.reporting.report import metrics_table, run_table
    from dgnode.training.loop import fit

    if not config.data.store:
        raise InputError("no feature store: pass --data.store DIR or s3://BUCKET/PREFIX (or data.store in --config)")
    data = load_conversations(config.data.store, config.data.modalities, config.data.normalise)
    result = fit(config, data, options.out, progress=options.progress)
    console = Console(width=120)
    console.print(run_table(result.report, title=f"dgnode train: {config.model.name}"))
    if result.test is not None:
        console.print(metrics_table(result.test.summary(), data.label_names, title="Test (best checkpoint)",
                                    model=config.model.name))
    print(json.dumps(result.final_metrics()), flush=True)
    return 0


def run_train_ray(options: RayTrainOptions, config: TrainConfig) -> int:
    import dataclasses

    from rich.console import Console

    from dgnode.ray_session import ray_session
    from dgnode.storage import resolve
    from dgnode.training.distributed import train_and_track

    fields = {f.name: getattr(options, f.name) for f in dataclasses.fields(DistributedSettings)}
    settings = DistributedSettings(**{**fields, "storage_path": resolve(options.storage_path).uri})
    with ray_session():
        outcome = train_and_track(config, settings, options.tracking_uri, options.experiment, options.registered_model)
    Console().print(outcome.summary_line(), highlight=False)
    return 0


def run_evaluate(options: EvaluateOptions) -> int:
    from rich.console import Console

    from dgnode.reporting.report import metrics_table
    from dgnode.training.best import load_run
    from dgnode.training.rundir import RunDir

    trainer, config = load_run(options.run, store=options.store, device=options.device)
    summary = trainer.evaluate(options.split).summary()
    RunDir(options.run).write_evaluation(options.split, summary)
    Console(width=120).print(metrics_table(summary, trainer.data.label_names, title=f"{options.split} ({options.run})",
                                           model=config.model.name))
    print(json.dumps({"run": str(options.run), "model": config.model.name, **summary}), flush=True)
    return 0


def run_models(options: ModelsOptions) -> int:
    from rich.console import Console

    from dgnode.reporting.report import models_table

    Console(width=120).print(models_table())
    return 0


COMMANDS = (
    Command("train", TrainOptions, run_train, help="train a model (DGODE, baselines) on a feature store",
            config=TrainConfig),
    Command("train-ray", RayTrainOptions, run_train_ray, config=TrainConfig,
            help="train on Ray Train workers (DDP), tracked in MLflow; resumable"),
    Command("evaluate", EvaluateOptions, run_evaluate, help="re-evaluate a finished run's best checkpoint"),
    Command("models", ModelsOptions, run_models, help="list the models and their options with defaults"),
)
