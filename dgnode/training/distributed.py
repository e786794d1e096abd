"""Data-parallel training on Ray Train (V2): ``TorchTrainer`` workers, DDP, checkpoints, resume.

Each worker builds the :class:`~dgnode.features.dataset.ConversationSet` from the feature store
(a location every node can read: an ``s3://`` URI on a cluster), a :class:`~dgnode.training.trainer.Trainer` whose model is wrapped
with DDP (``ray.train.torch.prepare_model``: gloo on CPU, NCCL on GPU) and which knows its rank,
and runs the one training loop (:func:`dgnode.training.loop.run_epochs`) with Ray Train's hooks
(:func:`dgnode.training.checkpointing.train_hooks`). Why W workers take the single-process step
is in :meth:`Trainer.train_epoch`; with one worker the run *is* the single-process run (same
batches, same dropout stream, same loss). What still differs with W > 1 and bounds the agreement
in the tests:

* dropout masks: drawn per rank (rank 0 from the single-process stream), so compare with
  ``model.dropout = 0`` for exactness;
* adaptive ODE solvers choose one step sequence per solve from an error norm over the nodes
  solved together, so a shard's steps differ from the full batch's by about ``rtol``; with a
  fixed-step solver (``rk4``, ``euler``...) the per-dialogue dynamics are batch-independent.

Validation runs on every rank over the whole valid split (identical models give identical
metrics, so early stopping agrees without a broadcast).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import ray.train

from dgnode.errors import DgnodeError
from dgnode.training.rundir import RunDir
from dgnode.training.settings import DistributedSettings

__all__ = ["DistributedResult", "DistributedSettings", "MLflowEpochLogger", "TrackedTrainingResult",
           "run_distributed", "train_and_track", "train_loop_per_worker"]


@dataclass
class DistributedResult:
    """What :func:`run_distributed` returns: the last epoch's metrics and the checkpoint holding
    ``state.pt`` and ``best.pt`` (``checkpoint_path``: a local path or an ``s3://`` URI, readable
    with :class:`~dgnode.training.rundir.RunDir`); ``storage``: the run's directory, likewise."""

    history: list[dict[str, float]]
    checkpoint_path: str | None
    best_valid_wf1: float
    best_epoch: int
    storage: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """The Ray Train worker function: ``loop_config`` holds ``config`` (a TrainConfig, whose
    ``data.store`` every node can read), ``epochs`` (or ``None``: ``train.epochs``) and
    ``torch_threads``."""
    import ray.train.torch
    import torch

    from dgnode.features.dataset import load_conversations
    from dgnode.training.checkpointing import train_hooks
    from dgnode.training.loop import run_epochs
    from dgnode.training.trainer import Trainer

    config = loop_config["config"]
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    if loop_config.get("torch_threads"):
        torch.set_num_threads(int(loop_config["torch_threads"]))
    data = load_conversations(config.data.store, config.data.modalities, config.data.normalise)
    if not data.split("train"):
        raise DgnodeError(f"{config.data.store}: the store has no train dialogues")
    trainer = Trainer(config, data, device=ray.train.torch.get_device(), wrap_model=ray.train.torch.prepare_model,
                      rank=rank, world_size=world_size)
    hooks = train_hooks(rank)
    try:
        run_epochs(trainer, hooks, loop_config.get("epochs"))
    finally:
        hooks.close()


class MLflowEpochLogger(ray.train.UserCallback):
    """Logs rank 0's per-epoch metrics to an existing MLflow run from the Ray Train controller;
    the run's lifecycle (creation, final status) stays with the driver."""

    def __init__(self, tracking_uri: str, run_id: str, experiment_id: str) -> None:
        self.tracking_uri, self.run_id, self.experiment_id = tracking_uri, run_id, experiment_id

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        from dgnode.tracking.runs import TrackedRun

        if metrics:
            first = metrics[0]
            run = TrackedRun(self.tracking_uri, self.run_id, self.experiment_id)
            run.log_epoch(first)
            run.log_metrics({"best_valid_wf1": first.get("best_valid_wf1")}, step=int(first.get("epoch", 0)))


def run_distributed(
    config: Any,
    settings: DistributedSettings,
    callbacks: Sequence[Any] = (),
    epochs: int | None = None,
) -> DistributedResult:
    """Run :func:`train_loop_per_worker` on ``settings.num_workers`` Ray Train workers over the
    store ``config.data.store``.

    Resumes from the last checkpoint of ``settings.storage_path / settings.name`` if there is
    one. Raises ``ray.train.TrainingFailedError`` when the workers fail (e.g. the NFE cap) more
    than ``settings.max_failures`` times.
    """
    from ray.train.torch import TorchTrainer

    from dgnode.storage import resolve
    from dgnode.training.checkpointing import checkpoint_uri

    # Absolute when local (workers resolve it on their own nodes); an s3:// URI goes to Ray as
    # bucket/prefix plus the filesystem (Ray's form when the filesystem is given).
    storage = resolve(settings.storage_path or "ray_results")
    storage_path, storage_filesystem = storage.ray_storage()
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "config": config,
            "epochs": epochs,
            "torch_threads": int(settings.cpus_per_worker),
        },
        scaling_config=ray.train.ScalingConfig(
            num_workers=settings.num_workers,
            use_gpu=settings.gpus_per_worker > 0,
            resources_per_worker={"CPU": settings.cpus_per_worker, **({"GPU": settings.gpus_per_worker} if settings.gpus_per_worker > 0 else {})},
        ),
        run_config=ray.train.RunConfig(
            name=settings.name,
            storage_path=storage_path,
            storage_filesystem=storage_filesystem,
            failure_config=ray.train.FailureConfig(max_failures=settings.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            callbacks=list(callbacks),
        ),
    )
    result = trainer.fit()
    checkpoint = checkpoint_uri(result.checkpoint) if result.checkpoint is not None else None
    history = RunDir(checkpoint).read_history() if checkpoint is not None else []
    last = result.metrics or {}
    return DistributedResult(
        history=history,
        checkpoint_path=checkpoint,
        best_valid_wf1=float(last.get("best_valid_wf1", float("nan"))),
        best_epoch=int(last.get("best_epoch", -1)),
        storage=storage.join(settings.name).uri,
    )


@dataclass
class TrackedTrainingResult:
    """What :func:`train_and_track` returns."""

    run_id: str
    result: DistributedResult
    test: dict[str, Any]
    model_uri: str | None
    model_version: str | None

    def summary_line(self) -> str:
        result, test = self.result, self.test
        return (f"{len(result.history)} epochs; best epoch {result.best_epoch}: valid wF1 {result.best_valid_wf1:.4f}"
                + (f", test wF1 {test['weighted_f1']:.4f}, acc {test['accuracy']:.4f}" if test else "")
                + f"; MLflow run {self.run_id}, model {self.model_uri} (version {self.model_version})")


def train_and_track(
    config: Any,
    settings: DistributedSettings,
    tracking_uri: str | None = None,
    experiment: str = "dgnode-train",
    registered_model: str | None = None,
) -> TrackedTrainingResult:
    """One distributed training run recorded in MLflow: checks the tracking URI first, logs the
    config and provenance, per-epoch metrics (from the Ray Train controller), then evaluates the
    best checkpoint on the test split on the driver and logs and registers the model.

    Relaunching with the same ``settings.name`` and ``storage_path`` resumes training from the
    last checkpoint (a new MLflow run records the relaunch; ``dgnode.train_name`` ties them).
    """
    import torch

    from dgnode.features.dataset import load_conversations
    from dgnode.features.store import FeatureStore
    from dgnode.options import replace_dotted
    from dgnode.storage import resolve
    from dgnode.tracking.runs import ensure_experiment, provenance_tags, tracked_run
    from dgnode.tracking.server import check_tracking_uri, resolve_tracking_uri
    from dgnode.training.best import evaluate_and_register

    uri = resolve_tracking_uri(tracking_uri)
    check_tracking_uri(uri)
    if not config.data.store:
        raise DgnodeError("the config names no data.store: pass --data.store")
    store = resolve(config.data.store).uri  # what every node reads: an absolute path or an s3:// URI
    config = replace_dotted(config, {"data.store": store})
    fingerprint = FeatureStore.open(store).fingerprint()  # a bad store fails before anything is recorded
    experiment_id = ensure_experiment(uri, experiment)
    tags = {**provenance_tags(fingerprint, store), "dgnode.run_kind": "train",
            "dgnode.train_name": settings.name, "dgnode.workers": settings.num_workers}
    with tracked_run(uri, experiment_id, run_name=settings.name, tags=tags) as run:
        run.log_config(config)
        run.log_params({"ray.num_workers": settings.num_workers, "ray.gpus_per_worker": settings.gpus_per_worker})
        result = run_distributed(config, settings, callbacks=[MLflowEpochLogger(uri, run.run_id, experiment_id)])
        if result.checkpoint_path is None:
            raise DgnodeError("training reported no checkpoint: nothing to evaluate")
        data = load_conversations(store, config.data.modalities, config.data.normalise)
        device = "cuda" if settings.gpus_per_worker > 0 and torch.cuda.is_available() else "cpu"
        state = RunDir(result.checkpoint_path).load_model(device)
        run.log_metrics({"best_valid_wf1": result.best_valid_wf1})
        run.log_dict({"history": result.history}, RunDir.HISTORY)
        # valid_wf1 / valid_acc are already per-epoch metrics of this run: artifacts only.
        best = evaluate_and_register(config, data, state, run, registered_model or experiment, device=device,
                                     log_valid_metrics=False)
    return TrackedTrainingResult(run.run_id, result, best.test, best.model_uri, best.model_version)
