"""The model, optimiser and loop state of one training process (one worker of several, or alone).

:class:`Trainer` owns one epoch step and the evaluation; the loop around them (epochs, early
stopping, checkpoints, reporting) is :func:`dgnode.training.loop.run_epochs`, which serves a
single process, a Ray Train worker and a Tune trial alike through hooks.

Loss: cross-entropy over labelled utterances (label ``-1`` ignored), optionally weighted by
inverse class frequency on the train split, ``w_c = n / (C n_c)`` (0 for classes absent from
train). Optimiser and schedule: :mod:`dgnode.training.optim` (Adam, L2 on matrices, an optional
per-epoch LR schedule whose state is part of :meth:`Trainer.state_dict`).
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any, Callable, Sequence

import torch
from torch import nn

from dgnode.errors import InputError
from dgnode.features.dataset import Conversation, ConversationSet, collate, iterate_batches
from dgnode.models.graph_ode import GraphODE
from dgnode.models.registry import build_model
from dgnode.options import to_dict
from dgnode.reporting.metrics import classification_metrics
from dgnode.training.batches import epoch_batches, shard_of_batch
from dgnode.training.config import TrainConfig
from dgnode.training.evaluation import EvalResult
from dgnode.training.provenance import describe_inputs
from dgnode.training.optim import build_optimizer, build_schedule, step_schedule
from dgnode.training.reproducibility import derive_seed, explain_nondeterminism, seed_everything

__all__ = ["Trainer"]


class Trainer:
    """Model, optimiser and loop state for one run on one process.

    Args:
        config: the run's :class:`TrainConfig`.
        data: conversations with ``dims``, ``num_speakers``, ``label_names``.
        device: where to train (default ``config.train.device``).
        wrap_model: wraps the built model for training, e.g. ``ray.train.torch.prepare_model``
            (DDP); evaluation and checkpoints always use the unwrapped :attr:`core_model`.
        rank, world_size: this worker in data-parallel training (Ray Train): the rank picks the
            worker's slice of every batch and enters its dropout seed (initial weights stay equal
            on every worker).
    """

    def __init__(
        self,
        config: TrainConfig,
        data: ConversationSet,
        device: str | torch.device | None = None,
        wrap_model: Callable[[nn.Module], nn.Module] | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got {rank} of {world_size}")
        self.config = config
        self.rank, self.world_size = rank, world_size
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
        self.optimizer = build_optimizer(self.core_model, config.optim)
        self.schedule = build_schedule(self.optimizer, config.optim, config.train.epochs)
        self.class_weights = self._class_weights() if config.train.class_weights else None
        self.inputs = describe_inputs(config, data, self.modalities)
        self.epoch = 0  # epochs completed
        self.best_valid_wf1 = -math.inf
        self.best_epoch = -1
        self.epochs_without_improvement = 0

    # -- training --------------------------------------------------------------------------
    def train_epoch(self, conversations: Sequence[Conversation] | None = None, epoch: int = 0) -> dict[str, float]:
        """One pass over ``conversations`` (default: the train split): this worker's slice of
        every global batch of :func:`~dgnode.training.batches.epoch_batches`.

        Loss: the single-process loss of a global batch ``B`` is the (class-weighted) mean over its
        labelled utterances, ``L(B) = sum_{i in B} w_i l_i / sum_{i in B} w_i``. Worker ``r`` of
        ``W`` minimises ``L_r = W sum_{i in B^r} w_i l_i / sum_{i in B} w_i``, normalised by the
        weight of the *global* batch, which every worker knows without communication; DDP averages
        gradients, so ``(1/W) sum_r grad L_r = grad L(B)``: each optimiser step is the
        single-process step up to summation order (averaging per-shard means instead would weight
        utterances unequally). With ``W = 1`` this is exactly the single-process step. A worker
        whose slice is empty runs the batch's first dialogue with a zero loss so that every rank
        joins every gradient all-reduce.

        Shuffling and dropout are seeded from ``(seed, epoch)`` (and the rank for ranks > 0): the
        same epoch draws the same batches and masks whatever ran before it. Returns the global
        ``train_loss`` (mean over labelled utterances), ``nfe`` (mean ODE evaluations per solve),
        ``epoch_time`` (seconds) and ``batches`` (global batches).
        """
        import torch.distributed as dist

        conversations = self.data.split("train") if conversations is None else list(conversations)
        if not conversations:
            raise InputError("no train dialogues to train on")
        config, rank, world = self.config, self.rank, self.world_size
        self.seed_dropout(epoch)
        per_utterance = nn.CrossEntropyLoss(weight=self.class_weights, ignore_index=-1, reduction="sum")
        weights = self._cpu_weights()
        self.model.train()
        started = time.perf_counter()
        loss_sum, labelled_total, nfe_sum, solves = 0.0, 0, 0, 0
        batches = epoch_batches(len(conversations), config.train.batch_size, config.train.seed, epoch)
        for indices in batches:
            global_labels = torch.cat([conversations[i].labels for i in indices])
            labelled = global_labels >= 0
            labelled_total += int(labelled.sum())
            normaliser = float(weights[global_labels[labelled]].sum()) if weights is not None else float(labelled.sum())
            mine = shard_of_batch(indices, rank, world)
            batch = collate([conversations[i] for i in (mine or indices[:1])]).to(self.device)
            with explain_nondeterminism():
                with self.autocast():
                    output = self.model(batch)
                logits = output.logits.float()
                if mine and normaliser > 0 and bool((batch.labels >= 0).any()):
                    summed = per_utterance(logits, batch.labels)
                    loss = summed * (world / normaliser)
                    # This shard's part of L(B) times the batch's labelled count: summed over ranks
                    # and batches, the numerator of the epoch's mean loss.
                    loss_sum += float(summed.detach()) / normaliser * int(labelled.sum())
                else:
                    loss = logits.sum() * 0.0
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
            if config.train.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.core_model.parameters(), config.train.grad_clip)
            self.optimizer.step()
            if mine:
                nfe_sum += int(output.nfe)
                solves += 1
        totals = torch.tensor([loss_sum, float(nfe_sum), float(solves)], dtype=torch.float64)
        if world > 1 and dist.is_available() and dist.is_initialized():
            dist.all_reduce(totals)
        summed_loss, nfe_total, solve_total = totals.tolist()
        self.epoch = epoch + 1
        return {
            "train_loss": summed_loss / labelled_total if labelled_total else float("nan"),
            "nfe": nfe_total / solve_total if solve_total else 0.0,
            "epoch_time": time.perf_counter() - started,
            "batches": len(batches),
        }

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on CUDA when ``train.amp`` (the graph ODE opts out: float32 inside)."""
        if self.config.train.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step_schedule(self, valid_loss: float) -> None:
        """The end-of-epoch step of ``optim.schedule`` (the loop calls it after validation)."""
        step_schedule(self.schedule, valid_loss)

    @property
    def lr(self) -> float:
        """The current learning rate (of the first parameter group; every group shares it)."""
        return float(self.optimizer.param_groups[0]["lr"])

    def seed_dropout(self, epoch: int) -> None:
        """Seed torch's global stream for ``epoch``'s dropout masks: rank 0 draws the
        single-process stream, other ranks their own (different masks, same initial weights)."""
        keys = ("dropout", epoch) if self.rank == 0 else ("dropout", epoch, "rank", self.rank)
        torch.manual_seed(derive_seed(self.config.train.seed, *keys))

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
                with explain_nondeterminism(), self.autocast():
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
            metrics=metrics,
            loss=loss,
            nfe=nfe_sum / batches,
            utt_ids=utt_ids,
            dialog_ids=dialog_ids,
            labels=all_labels.numpy(),
            predictions=predictions,
            representations=torch.cat(representations).numpy() if representations else None,
        )

    def diagnostics(self) -> dict[str, float]:
        """The model's own per-epoch diagnostics (its ``diagnostics()`` method, if it has one:
        DGODE's ODE growth bound and ``W``'s spectrum); empty otherwise."""
        report = getattr(self.core_model, "diagnostics", None)
        return dict(report()) if callable(report) else {}

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
        """Everything needed to resume (model, optimiser, LR schedule, epoch and early-stopping
        state) and to reload the model on its own (:func:`dgnode.training.provenance.describe_inputs`)."""
        return {
            "model": self.core_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict() if self.schedule is not None else None,
            "epoch": self.epoch,
            "best_valid_wf1": self.best_valid_wf1,
            "best_epoch": self.best_epoch,
            "epochs_without_improvement": self.epochs_without_improvement,
            "config": to_dict(self.config),
            "dims": dict(self.dims),
            "label_names": list(self.data.label_names),
            "num_speakers": self.data.num_speakers,
            # modalities, normalisation statistics, speaker rule, store fingerprint, versions:
            # what reloading the model needs (dgnode.training.provenance)
            **self.inputs,
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
        if self.schedule is not None and state.get("schedule") is not None:
            self.schedule.load_state_dict(state["schedule"])
        self.epoch = int(state.get("epoch", self.epoch))
        self.best_valid_wf1 = float(state.get("best_valid_wf1", self.best_valid_wf1))
        self.best_epoch = int(state.get("best_epoch", self.best_epoch))
        self.epochs_without_improvement = int(state.get("epochs_without_improvement", self.epochs_without_improvement))

    def model_state(self, **extra: Any) -> dict[str, Any]:
        """A model-only checkpoint (weights, config, input dims, labels, ``extra``): what
        :meth:`dgnode.training.rundir.RunDir.save_model` writes as ``best.pt``."""
        state = self.state_dict()
        del state["optimizer"], state["schedule"]
        state.update(extra)
        return state

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
