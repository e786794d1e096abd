"""Single-process training and evaluation of a conversation model.

:class:`Trainer` owns the model, the optimiser and the loop state; :func:`fit` runs a whole
experiment (epochs, early stopping on valid weighted F1, best checkpoint, one test evaluation,
report and figures). The distributed and tuning layers reuse both: Ray Train passes
``wrap_model`` (DDP) and a shard of the train dialogues to :meth:`Trainer.train_epoch`; Ray Tune
passes a callback to :func:`fit` that reports each epoch and may raise :class:`StopTraining`.

Loss: cross-entropy over labelled utterances (label ``-1`` ignored), optionally weighted by
inverse class frequency on the train split, ``w_c = n / (C n_c)`` (0 for classes absent from
train). Optimiser: Adam with L2 ``weight_decay``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from dgnode.options import dump_yaml, to_dict
from dgnode.errors import InputError
from dgnode.features.dataset import Conversation, ConversationSet, iterate_batches
from dgnode.models.graph_ode import GraphODE
from dgnode.models.registry import build_model
from dgnode.reporting.metrics import classification_metrics
from dgnode.training.config import TrainConfig
from dgnode.training.reproducibility import derive_seed, seed_everything

BEST_CHECKPOINT = "best.pt"
CONFIG_FILE = "config.yaml"
REPORT_FILE = "report.json"
HISTORY_FILE = "history.json"


class StopTraining(Exception):
    """Raised by a :func:`fit` callback to end training after the current epoch (e.g. ASHA)."""


@dataclass
class EvalResult:
    """Evaluation of one split. Metrics are fractions; arrays are aligned with ``utt_ids``.

    ``predictions`` covers every utterance, ``labels`` holds -1 for unlabelled ones (excluded
    from the metrics); ``representations`` are the classifier inputs, ``(N, D)``.
    """

    split: str
    accuracy: float
    weighted_f1: float
    per_class_f1: dict[str, float]
    support: dict[str, int]
    confusion: list[list[int]]
    loss: float
    nfe: float
    utt_ids: list[str]
    dialog_ids: list[str]
    labels: np.ndarray
    predictions: np.ndarray
    representations: np.ndarray | None = None

    def summary(self) -> dict[str, Any]:
        """The JSON-able metrics (no per-utterance arrays)."""
        return {
            "split": self.split,
            "accuracy": self.accuracy,
            "weighted_f1": self.weighted_f1,
            "per_class_f1": dict(self.per_class_f1),
            "support": dict(self.support),
            "confusion": self.confusion,
            "loss": self.loss,
            "nfe": self.nfe,
            "utterances": len(self.utt_ids),
            "labelled": int((self.labels >= 0).sum()),
        }


class Trainer:
    """Model, optimiser and loop state for one run on one process.

    Args:
        config: the run's :class:`TrainConfig`.
        data: conversations with ``dims``, ``num_speakers``, ``label_names``.
        device: where to train (default ``config.train.device``).
        wrap_model: wraps the built model for training, e.g. ``ray.train.torch.prepare_model``
            (DDP); evaluation and checkpoints always use the unwrapped :attr:`core_model`.
        rank: the worker's rank in data-parallel training: it enters the dropout seed so that
            workers draw different masks (initial weights stay equal on every worker).
    """

    def __init__(
        self,
        config: TrainConfig,
        data: ConversationSet,
        device: str | torch.device | None = None,
        wrap_model: Callable[[nn.Module], nn.Module] | None = None,
        rank: int = 0,
    ) -> None:
        self.config = config
        self.rank = rank
        self.data = data
        self.device = torch.device(device if device is not None else config.train.device)
        seed_everything(config.train.seed, config.train.deterministic)
        self.modalities = self._modalities(config, data)
        self.dims = {m: data.dims[m] for m in self.modalities}
        self.core_model = build_model(config.model, self.dims, data.num_speakers, len(data.label_names)).to(self.device)
        for module in self.core_model.modules():
            if isinstance(module, GraphODE):
                module.nfe_cap = config.train.nfe_cap
        self.model = wrap_model(self.core_model) if wrap_model is not None else self.core_model
        self.optimizer = torch.optim.Adam(
            self.core_model.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay
        )
        self.class_weights = self._class_weights() if config.train.class_weights else None
        self.loss_fn = nn.CrossEntropyLoss(weight=self.class_weights, ignore_index=-1)
        self.epoch = 0  # epochs completed
        self.best_valid_wf1 = -math.inf
        self.best_epoch = -1
        self.epochs_without_improvement = 0

    # -- training --------------------------------------------------------------------------
    def train_epoch(self, conversations: Sequence[Conversation] | None = None, epoch: int = 0) -> dict[str, float]:
        """One pass over ``conversations`` (default: the train split) in shuffled batches.

        Shuffling and dropout are seeded from ``(seed, epoch)``: the same epoch draws the same
        batches and masks whatever ran before it. Returns ``train_loss`` (mean over labelled
        utterances), ``nfe`` (mean ODE evaluations per batch), ``epoch_time`` (seconds),
        ``batches`` and ``unlabelled_batches`` (batches without a labelled utterance: they
        contribute a zero loss, so every DDP worker still runs the same backward passes).
        """
        conversations = self.data.split("train") if conversations is None else list(conversations)
        if not conversations:
            raise InputError("no train dialogues to train on")
        seed = self.config.train.seed
        # Rank 0 keeps the single-process stream (dgnode.training.distributed draws the same keys).
        dropout_keys = ("dropout", epoch) if self.rank == 0 else ("dropout", epoch, "rank", self.rank)
        torch.manual_seed(derive_seed(seed, *dropout_keys))
        generator = torch.Generator().manual_seed(derive_seed(seed, "shuffle", epoch))
        self.model.train()
        started = time.perf_counter()
        total_loss, total_labelled, nfe_sum, batches, unlabelled_batches = 0.0, 0, 0, 0, 0
        clip = self.config.train.grad_clip
        for batch in iterate_batches(conversations, self.config.train.batch_size, shuffle=True, generator=generator):
            batch = batch.to(self.device)
            output = self.model(batch)
            labelled = int((batch.labels >= 0).sum())
            if labelled:
                loss = self.loss_fn(output.logits, batch.labels)
            else:
                unlabelled_batches += 1
                loss = output.logits.sum() * 0.0
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(self.core_model.parameters(), clip)
            self.optimizer.step()
            total_loss += float(loss.detach()) * labelled
            total_labelled += labelled
            nfe_sum += int(output.nfe)
            batches += 1
        self.epoch = epoch + 1
        return {
            "train_loss": total_loss / total_labelled if total_labelled else float("nan"),
            "nfe": nfe_sum / batches,
            "epoch_time": time.perf_counter() - started,
            "batches": batches,
            "unlabelled_batches": unlabelled_batches,
        }

    # -- evaluation ------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, split: str | Sequence[Conversation], keep_representations: bool = True) -> EvalResult:
        """Metrics, predictions and (optionally) representations of a split or a list of
        dialogues, with the unwrapped model in eval mode (no dropout)."""
        name = split if isinstance(split, str) else "custom"
        conversations = self.data.split(split) if isinstance(split, str) else list(split)
        if not conversations:
            raise InputError(f"split {name!r} has no dialogues to evaluate")
        model = self.core_model
        was_training = model.training
        model.eval()
        logits, representations, labels, utt_ids, dialog_ids = [], [], [], [], []
        nfe_sum, batches = 0, 0
        try:
            for batch in iterate_batches(conversations, self.config.train.batch_size, shuffle=False):
                batch_device = batch.to(self.device)
                output = model(batch_device)
                logits.append(output.logits.float().cpu())
                if keep_representations and output.representations is not None:
                    representations.append(output.representations.float().cpu())
                labels.append(batch.labels)
                utt_ids += batch.utt_ids
                dialog_ids += [batch.dialog_ids[i] for i in batch.dialog_index.tolist()]
                nfe_sum += int(output.nfe)
                batches += 1
        finally:
            model.train(was_training)
        all_logits = torch.cat(logits)
        all_labels = torch.cat(labels)
        labelled = all_labels >= 0
        if not labelled.any():
            raise InputError(f"split {name!r} has no labelled utterances to score")
        loss = float(nn.functional.cross_entropy(all_logits[labelled], all_labels[labelled], weight=self._cpu_weights()))
        predictions = all_logits.argmax(dim=1).numpy()
        metrics = classification_metrics(all_labels.numpy(), predictions, self.data.label_names)
        return EvalResult(
            split=name,
            accuracy=metrics.accuracy,
            weighted_f1=metrics.weighted_f1,
            per_class_f1=metrics.per_class_f1,
            support=metrics.support,
            confusion=metrics.confusion,
            loss=loss,
            nfe=nfe_sum / batches,
            utt_ids=utt_ids,
            dialog_ids=dialog_ids,
            labels=all_labels.numpy(),
            predictions=predictions,
            representations=torch.cat(representations).numpy() if representations else None,
        )

    # -- early stopping --------------------------------------------------------------------
    def update_best(self, epoch: int, valid_wf1: float) -> bool:
        """Record a validation score; ``True`` when it beats every earlier one."""
        if valid_wf1 > self.best_valid_wf1:
            self.best_valid_wf1 = valid_wf1
            self.best_epoch = epoch
            self.epochs_without_improvement = 0
            return True
        self.epochs_without_improvement += 1
        return False

    def should_stop(self) -> bool:
        patience = self.config.train.patience
        return patience > 0 and self.epochs_without_improvement >= patience

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: model, optimiser, epoch and early-stopping state."""
        return {
            "model": self.core_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "best_valid_wf1": self.best_valid_wf1,
            "best_epoch": self.best_epoch,
            "epochs_without_improvement": self.epochs_without_improvement,
            "config": to_dict(self.config),
            "dims": dict(self.dims),
            "label_names": list(self.data.label_names),
            "num_speakers": self.data.num_speakers,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; the optimiser state is optional (a best
        checkpoint holds only the model)."""
        if "dims" in state and dict(state["dims"]) != self.dims:
            raise InputError(f"checkpoint was trained on inputs {state['dims']}, this data has {self.dims}")
        if "label_names" in state and list(state["label_names"]) != list(self.data.label_names):
            raise InputError(f"checkpoint labels {state['label_names']} differ from the data's {self.data.label_names}")
        self.core_model.load_state_dict(state["model"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state.get("epoch", self.epoch))
        self.best_valid_wf1 = float(state.get("best_valid_wf1", self.best_valid_wf1))
        self.best_epoch = int(state.get("best_epoch", self.best_epoch))
        self.epochs_without_improvement = int(state.get("epochs_without_improvement", self.epochs_without_improvement))

    def save_model(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """A model-only checkpoint (weights, config, input dims, labels, ``extra``)."""
        path = Path(path)
        state = self.state_dict()
        del state["optimizer"]
        state.update(extra or {})
        temporary = path.with_name(f".{path.name}.tmp")
        torch.save(state, temporary)
        temporary.replace(path)
        return path

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _modalities(config: TrainConfig, data: ConversationSet) -> list[str]:
        wanted = config.data.modalities or data.modalities
        missing = [m for m in wanted if m not in data.dims]
        if missing:
            raise InputError(f"data.modalities asks for {missing}, the loaded features have {data.modalities}")
        return [m for m in data.modalities if m in wanted]

    def _class_weights(self) -> torch.Tensor:
        labels = torch.cat([c.labels for c in self.data.split("train")])
        labels = labels[labels >= 0]
        num_classes = len(self.data.label_names)
        counts = torch.bincount(labels, minlength=num_classes).double()
        weights = torch.where(counts > 0, labels.numel() / (num_classes * counts.clamp(min=1)), torch.zeros_like(counts))
        return weights.float().to(self.device)

    def _cpu_weights(self) -> torch.Tensor | None:
        return None if self.class_weights is None else self.class_weights.cpu()


def epoch_metrics(epoch: int, stats: dict[str, float], valid: EvalResult) -> dict[str, float]:
    """What every training loop reports after an epoch (fit, Ray Train workers, Tune trials):
    ``stats`` from :meth:`Trainer.train_epoch`, ``valid`` from :meth:`Trainer.evaluate`."""
    return {
        "epoch": epoch,
        "train_loss": stats["train_loss"],
        "valid_wf1": valid.weighted_f1,
        "valid_acc": valid.accuracy,
        "valid_loss": valid.loss,
        "nfe": stats["nfe"],
        "epoch_time": stats["epoch_time"],
    }


@dataclass
class FitResult:
    """Outcome of :func:`fit`; ``report`` is what ``out_dir/report.json`` holds."""

    out_dir: Path
    best_epoch: int
    best_valid_wf1: float
    epochs_run: int
    stopped: str
    history: list[dict[str, float]]
    test: EvalResult | None
    report: dict[str, Any] = field(default_factory=dict)


def fit(
    config: TrainConfig,
    data: ConversationSet,
    out_dir: str | Path,
    callbacks: Sequence[Callable[[int, dict[str, float]], None]] = (),
    progress: bool = True,
) -> FitResult:
    """Train with early stopping on valid weighted F1, then test the best checkpoint once.

    After each epoch every callback gets ``(epoch, {"epoch", "train_loss", "valid_wf1",
    "valid_acc", "valid_loss", "nfe", "epoch_time"})``; one raising :class:`StopTraining` ends
    training (the best checkpoint so far is kept). Writes to ``out_dir``: ``config.yaml``,
    ``best.pt``, ``history.json``, ``report.json`` and the figures of :mod:`dgnode.reporting`.
    """
    from tqdm import tqdm

    from dgnode.atomic import write_json
    from dgnode.training.report import build_report, write_run_outputs

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not data.split("valid"):
        raise InputError(
            "the data has no valid dialogues: early stopping and checkpoint selection need a valid split",
            path=config.data.store,
        )
    dump_yaml(config, out / CONFIG_FILE)
    started = time.perf_counter()
    trainer = Trainer(config, data)
    history: list[dict[str, float]] = []
    stopped = "max_epochs"
    bar = tqdm(range(config.train.epochs), desc=f"train {config.model.name}", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        stats = trainer.train_epoch(epoch=epoch)
        valid = trainer.evaluate("valid", keep_representations=False)
        metrics = epoch_metrics(epoch, stats, valid)
        history.append(metrics)
        if trainer.update_best(epoch, valid.weighted_f1):
            trainer.save_model(out / BEST_CHECKPOINT, extra={"valid": valid.summary()})
        write_json(out / HISTORY_FILE, {"history": history})
        bar.set_postfix(loss=f"{stats['train_loss']:.3f}", valid_wf1=f"{valid.weighted_f1:.3f}", best=trainer.best_epoch)
        try:
            for callback in callbacks:
                callback(epoch, dict(metrics))
        except StopTraining as stop:
            stopped = f"callback: {stop}" if str(stop) else "callback"
            break
        if trainer.should_stop():
            stopped = f"early stopping (patience {config.train.patience})"
            break
    bar.close()
    best = torch.load(out / BEST_CHECKPOINT, map_location=trainer.device, weights_only=True)
    trainer.core_model.load_state_dict(best["model"])
    test = trainer.evaluate("test") if data.split("test") else None
    report = build_report(
        config=config,
        data=data,
        trainer=trainer,
        history=history,
        test=test,
        stopped=stopped,
        out_dir=out,
        train_time_s=time.perf_counter() - started,
    )
    write_run_outputs(report, test, data.label_names, config, out)
    return FitResult(
        out_dir=out,
        best_epoch=trainer.best_epoch,
        best_valid_wf1=trainer.best_valid_wf1,
        epochs_run=len(history),
        stopped=stopped,
        history=history,
        test=test,
        report=report,
    )


def load_run(run_dir: str | Path, store: str | None = None, device: str | None = None) -> tuple[Trainer, TrainConfig]:
    """A :class:`Trainer` holding the best model of a finished run (``run_dir/config.yaml`` +
    ``run_dir/best.pt``); ``store`` overrides the feature store the config names."""
    from dgnode.features.dataset import load_conversations
    from dgnode.training.config import load_train_config

    run = Path(run_dir)
    for name in (CONFIG_FILE, BEST_CHECKPOINT):
        if not (run / name).exists():
            raise InputError(f"not a finished run: {name} is missing", path=str(run))
    overrides = [f"data.store={store}"] if store else []
    config = load_train_config(run / CONFIG_FILE, overrides)
    if config.data.store is None:
        raise InputError("the run's config names no data.store; pass --store", path=str(run / CONFIG_FILE))
    data = load_conversations(config.data.store, config.data.modalities, config.data.normalise)
    trainer = Trainer(config, data, device=device)
    try:
        state = torch.load(run / BEST_CHECKPOINT, map_location=trainer.device, weights_only=True)
    except Exception as error:  # a truncated or foreign file: say which
        raise InputError(f"unreadable checkpoint ({error})", path=str(run / BEST_CHECKPOINT)) from None
    trainer.load_state_dict(state)
    return trainer, config


__all__ = [
    "BEST_CHECKPOINT",
    "EvalResult",
    "FitResult",
    "StopTraining",
    "Trainer",
    "fit",
    "load_run",
]
