"""Data-parallel training on Ray Train (V2): ``TorchTrainer`` workers, DDP, checkpoints, resume.

Each worker builds the :class:`~dgnode.features.dataset.ConversationSet` from the feature store
(a path every node can read), wraps the model with DDP through the :class:`Trainer`'s
``wrap_model`` hook (``ray.train.torch.prepare_model``: gloo on CPU, NCCL on GPU), and trains
on its share of every batch.

Sharding, and why W workers reproduce one process
-------------------------------------------------
The single-process trainer draws, per epoch, the permutation ``randperm(n_train)`` from a
generator seeded with ``(seed, "shuffle", epoch)`` and cuts it into global batches ``B_1, B_2,
...`` of ``batch_size`` dialogues; its loss on a batch is the (class-weighted) mean over the
batch's labelled utterances,

.. math::  L(B) = \\frac{\\sum_{i \\in B} w_{y_i} \\ell_i}{\\sum_{i \\in B} w_{y_i}} .

Every worker draws the *same* permutation and the same global batches; worker ``r`` of ``W``
takes the ``r``-th contiguous slice ``B^r`` of each (dialogues are never split, the graph is per
dialogue) and minimises

.. math::  L_r = W \\cdot \\frac{\\sum_{i \\in B^r} w_{y_i} \\ell_i}{\\sum_{i \\in B} w_{y_i}} ,

normalised by the weight of the *global* batch, which every worker knows without
communication. DDP averages gradients, so ``(1/W) Σ_r ∇L_r = ∇L(B)``: each optimiser step is
the single-process step, up to floating-point summation order. (Averaging per-shard means
instead would weight utterances unequally whenever shards hold different numbers of labelled
utterances.) A worker whose slice is empty (a last batch with fewer than ``W`` dialogues) runs
the batch's first dialogue with a zero loss, so that every rank joins every gradient
all-reduce. What still differs from one process, and bounds the agreement in the tests:

* dropout masks: drawn per rank (rank 0 from the single-process stream), so compare with
  ``model.dropout = 0`` for exactness;
* adaptive ODE solvers choose one step sequence per solve from an error norm over the nodes
  solved together, so a shard's steps differ from the full batch's by about ``rtol``; with a
  fixed-step solver (``rk4``, ``euler``...) the per-dialogue dynamics are batch-independent.

With ``W = 1`` the loop is exactly :meth:`Trainer.train_epoch`'s (same batches, same dropout
stream, same loss up to summation order).

Validation runs on every rank over the whole valid split (identical models give identical
metrics, so early stopping agrees without a broadcast). Rank 0 writes each epoch's checkpoint:
``state.pt`` (model, optimiser, epoch, early-stopping state; :meth:`Trainer.state_dict`) and
``best.pt`` (the best model so far, :meth:`Trainer.save_model` format). Relaunching with the same
``RunConfig(name, storage_path)``, or a worker-group restart under ``FailureConfig``, resumes from
the last checkpoint through ``ray.train.get_checkpoint()``; the per-epoch seeds make the resumed
epochs the ones an uninterrupted run would have drawn.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import ray.train

from dgnode.errors import DgnodeError

STATE_FILE = "state.pt"
BEST_FILE = "best.pt"
HISTORY_FILE = "history.json"


class TrainingDiverged(DgnodeError):
    """The training loss became NaN or infinite."""


@dataclass
class DistributedSettings:
    """How many workers and where Ray Train keeps checkpoints.

    Attributes:
        num_workers: DDP workers (one process each).
        gpus_per_worker: GPUs per worker; 0 trains on CPU with gloo, > 0 on CUDA with NCCL.
        cpus_per_worker: CPUs reserved per worker (also its torch thread count).
        storage_path: absolute directory (or shared/cloud URI) for checkpoints and results.
        name: run name under ``storage_path``; the same name resumes from its last checkpoint.
        max_failures: worker-group restarts from the last checkpoint before the run fails.
    """

    num_workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    storage_path: str = ""
    name: str = "dgnode-train"
    max_failures: int = 0

    def __post_init__(self) -> None:
        if self.num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {self.num_workers}")
        if self.gpus_per_worker < 0 or self.cpus_per_worker <= 0:
            raise ValueError(f"gpus_per_worker must be >= 0 and cpus_per_worker > 0, got {self.gpus_per_worker}, {self.cpus_per_worker}")
        if self.max_failures < -1:
            raise ValueError(f"max_failures must be >= -1 (-1: unlimited), got {self.max_failures}")


@dataclass
class DistributedResult:
    """What :func:`run_distributed` returns: the last epoch's metrics and the checkpoint holding
    ``state.pt`` and ``best.pt``."""

    history: list[dict[str, float]]
    checkpoint_path: str | None
    best_valid_wf1: float
    best_epoch: int
    storage: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# -- the per-worker pieces (pure functions, testable without Ray) ------------------------------
def epoch_batches(num_dialogues: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Indices of the global batches of ``epoch``: the single-process trainer's order exactly
    (``randperm`` from a generator seeded with ``derive_seed(seed, "shuffle", epoch)``)."""
    import torch

    from dgnode.training.reproducibility import derive_seed

    generator = torch.Generator().manual_seed(derive_seed(seed, "shuffle", epoch))
    order = torch.randperm(num_dialogues, generator=generator).tolist()
    return [order[start : start + batch_size] for start in range(0, num_dialogues, batch_size)]


def shard_of_batch(batch: Sequence[int], rank: int, world_size: int) -> list[int]:
    """Worker ``rank``'s contiguous slice of a global batch; slice sizes differ by at most one
    and the slices, in rank order, concatenate to the batch."""
    size = len(batch)
    start, stop = rank * size // world_size, (rank + 1) * size // world_size
    return list(batch[start:stop])


def distributed_train_epoch(trainer: Any, conversations: Sequence[Any], epoch: int, rank: int, world_size: int) -> dict[str, float]:
    """One epoch of worker ``rank`` (see the module docstring); returns global ``train_loss``,
    ``nfe`` (mean evaluations per solve, over batches and ranks), ``epoch_time`` and ``batches``.

    ``trainer.model`` is the DDP-wrapped model when ``world_size > 1``.
    """
    import torch
    import torch.distributed as dist
    from torch import nn

    from dgnode.features.dataset import collate
    from dgnode.training.reproducibility import derive_seed

    config = trainer.config
    seed = config.train.seed
    # Rank 0 draws the single-process dropout stream, so one worker reproduces Trainer exactly.
    dropout_keys = ("dropout", epoch) if rank == 0 else ("dropout", epoch, "rank", rank)
    torch.manual_seed(derive_seed(seed, *dropout_keys))
    weights = trainer.class_weights
    per_utterance = nn.CrossEntropyLoss(weight=weights, ignore_index=-1, reduction="sum")
    trainer.model.train()
    started = time.perf_counter()
    loss_sum = torch.zeros((), dtype=torch.float64)
    labelled_total, nfe_sum, solves = 0, 0, 0
    clip = config.train.grad_clip
    for indices in epoch_batches(len(conversations), config.train.batch_size, seed, epoch):
        global_labels = torch.cat([conversations[i].labels for i in indices])
        labelled_mask = global_labels >= 0
        labelled_total += int(labelled_mask.sum())
        if weights is not None:
            normaliser = float(weights.cpu()[global_labels[labelled_mask]].sum())
        else:
            normaliser = float(labelled_mask.sum())
        mine = shard_of_batch(indices, rank, world_size)
        batch = collate([conversations[i] for i in (mine or indices[:1])]).to(trainer.device)
        output = trainer.model(batch)
        if mine and normaliser > 0 and bool((batch.labels >= 0).any()):
            summed = per_utterance(output.logits, batch.labels)
            loss = summed * (world_size / normaliser)
            # This shard's part of L(B), times the batch's labelled count: summed over ranks
            # and batches, what Trainer.train_epoch accumulates (Σ_B L(B) n_B).
            loss_sum += float(summed.detach()) / normaliser * int(labelled_mask.sum())
        else:
            loss = output.logits.sum() * 0.0
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(trainer.core_model.parameters(), clip)
        trainer.optimizer.step()
        if mine:
            nfe_sum += int(output.nfe)
            solves += 1
    totals = torch.tensor([float(loss_sum), float(nfe_sum), float(solves)], dtype=torch.float64)
    if world_size > 1 and dist.is_available() and dist.is_initialized():
        dist.all_reduce(totals)
    summed_loss, nfe_total, solve_total = totals.tolist()
    trainer.epoch = epoch + 1
    return {
        "train_loss": summed_loss / labelled_total if labelled_total else float("nan"),
        "nfe": nfe_total / solve_total if solve_total else 0.0,
        "epoch_time": time.perf_counter() - started,
        "batches": math.ceil(len(conversations) / config.train.batch_size),
    }


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """The Ray Train worker function: ``loop_config`` holds ``config`` (a TrainConfig),
    ``store`` (feature store path) and optionally ``epochs`` (overrides ``config.train.epochs``)."""
    import ray.train.torch
    import torch

    from dgnode.features.dataset import load_conversations
    from dgnode.training.trainer import Trainer, epoch_metrics

    config = loop_config["config"]
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    threads = int(loop_config.get("torch_threads") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    store = loop_config.get("store") or config.data.store
    data = load_conversations(store, config.data.modalities, config.data.normalise)
    device = ray.train.torch.get_device()
    trainer = Trainer(config, data, device=device, wrap_model=ray.train.torch.prepare_model)
    train_conversations = data.split("train")
    if not train_conversations:
        raise DgnodeError(f"{store}: the store has no train dialogues")

    scratch = Path(tempfile.mkdtemp(prefix=f"dgnode-rank{rank}-"))
    history: list[dict[str, float]] = []
    try:
        start_epoch = 0
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as directory:
                state = torch.load(Path(directory) / STATE_FILE, map_location=device, weights_only=True)
                trainer.load_state_dict(state)
                history = json.loads((Path(directory) / HISTORY_FILE).read_text())
                if (Path(directory) / BEST_FILE).exists():
                    shutil.copy2(Path(directory) / BEST_FILE, scratch / BEST_FILE)
            start_epoch = trainer.epoch
        epochs = int(loop_config.get("epochs") or config.train.epochs)
        for epoch in range(start_epoch, epochs):
            stats = distributed_train_epoch(trainer, train_conversations, epoch, rank, world_size)
            if not math.isfinite(stats["train_loss"]):
                raise TrainingDiverged(f"train loss is {stats['train_loss']} at epoch {epoch}: training diverged")
            valid = trainer.evaluate("valid", keep_representations=False)
            if trainer.update_best(epoch, valid.weighted_f1) and rank == 0:
                trainer.save_model(scratch / BEST_FILE, extra={"valid": valid.summary(), "best_epoch": epoch})
            metrics = {**epoch_metrics(epoch, stats, valid),
                       "best_valid_wf1": trainer.best_valid_wf1, "best_epoch": trainer.best_epoch}
            stop = trainer.should_stop()
            metrics["early_stopped"] = int(stop)
            metrics["last"] = int(stop or epoch == epochs - 1)
            history.append(dict(metrics))
            if rank == 0:
                with tempfile.TemporaryDirectory(prefix="dgnode-ckpt-") as directory:
                    torch.save(trainer.state_dict(), Path(directory) / STATE_FILE)
                    if (scratch / BEST_FILE).exists():
                        shutil.copy2(scratch / BEST_FILE, Path(directory) / BEST_FILE)
                    (Path(directory) / HISTORY_FILE).write_text(json.dumps(history))
                    ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))
            else:
                ray.train.report(metrics)
            if stop:
                break
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


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
    store: str | None = None,
    callbacks: Sequence[Any] = (),
    epochs: int | None = None,
) -> DistributedResult:
    """Run :func:`train_loop_per_worker` on ``settings.num_workers`` Ray Train workers.

    Resumes from the last checkpoint of ``settings.storage_path / settings.name`` if there is
    one. Raises ``ray.train.TrainingFailedError`` when the workers fail (e.g. the NFE cap) more
    than ``settings.max_failures`` times.
    """
    from ray.train.torch import TorchTrainer

    storage = settings.storage_path or os.path.abspath("ray_results")
    if "://" not in storage and not os.path.isabs(storage):
        # Ray Train requires an absolute storage path (workers resolve it on their own nodes).
        storage = os.path.abspath(storage)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "config": config,
            "store": store or config.data.store,
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
            storage_path=storage,
            failure_config=ray.train.FailureConfig(max_failures=settings.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            callbacks=list(callbacks),
        ),
    )
    result = trainer.fit()
    history: list[dict[str, float]] = []
    if result.checkpoint is not None:
        with result.checkpoint.as_directory() as directory:
            history = json.loads((Path(directory) / HISTORY_FILE).read_text())
    last = result.metrics or {}
    return DistributedResult(
        history=history,
        checkpoint_path=result.checkpoint.path if result.checkpoint is not None else None,
        best_valid_wf1=float(last.get("best_valid_wf1", float("nan"))),
        best_epoch=int(last.get("best_epoch", -1)),
        storage=str(Path(storage) / settings.name) if "://" not in storage else f"{storage}/{settings.name}",
    )


@dataclass
class TrackedTrainingResult:
    """What :func:`train_and_track` returns."""

    run_id: str
    result: DistributedResult
    test: dict[str, Any]
    model_uri: str | None
    model_version: str | None


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
    from dgnode.tracking.runs import ensure_experiment, provenance_tags, tracked_run
    from dgnode.tracking.server import check_tracking_uri, resolve_tracking_uri
    from dgnode.training.trainer import Trainer

    uri = resolve_tracking_uri(tracking_uri)
    check_tracking_uri(uri)
    if not config.data.store:
        raise DgnodeError("the config names no data.store: pass --store")
    store = str(Path(config.data.store).resolve())
    experiment_id = ensure_experiment(uri, experiment)
    tags = {**provenance_tags(FeatureStore.open(store).fingerprint(), store), "dgnode.run_kind": "train",
            "dgnode.train_name": settings.name, "dgnode.workers": settings.num_workers}
    with tracked_run(uri, experiment_id, run_name=settings.name, tags=tags) as run:
        run.log_config(config)
        run.log_params({"ray.num_workers": settings.num_workers, "ray.gpus_per_worker": settings.gpus_per_worker})
        result = run_distributed(config, settings, store=store,
                                 callbacks=[MLflowEpochLogger(uri, run.run_id, experiment_id)])
        if result.checkpoint_path is None:
            raise DgnodeError("training reported no checkpoint: nothing to evaluate")
        data = load_conversations(store, config.data.modalities, config.data.normalise)
        device = "cuda" if settings.gpus_per_worker > 0 and torch.cuda.is_available() else "cpu"
        trainer = Trainer(config, data, device=device)
        with ray.train.Checkpoint(result.checkpoint_path).as_directory() as directory:
            state = torch.load(Path(directory) / BEST_FILE, map_location=device, weights_only=True)
        trainer.load_state_dict(state)
        run.log_metrics({"best_valid_wf1": result.best_valid_wf1, "best_epoch": result.best_epoch})
        if state.get("valid"):
            # valid_wf1 / valid_acc are already per-epoch metrics of this run: artifacts only.
            run.log_evaluation(state["valid"], data.label_names, split="valid", log_metrics=False)
        test = trainer.evaluate("test", keep_representations=False).summary() if data.split("test") else {}
        if test:
            run.log_evaluation(test, data.label_names, split="test")
        run.log_dict({"history": result.history}, "history.json")
        model_uri, version = run.log_model(trainer.core_model, registered_name=registered_model or experiment)
    return TrackedTrainingResult(run.run_id, result, test, model_uri, version)
