"""The result of evaluating a model on one split, and the metrics every epoch reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from dgnode.reporting.metrics import ClassificationMetrics
from dgnode.tracking.runs import DIAGNOSTIC_PREFIX

__all__ = ["EvalResult", "epoch_metrics"]


@dataclass
class EvalResult:
    """Evaluation of one split: the metrics (fractions) and what they were computed from, the
    per-utterance arrays aligned with ``utt_ids``.

    ``predictions`` covers every utterance, ``labels`` holds -1 for unlabelled ones (excluded
    from the metrics); ``representations`` are the classifier inputs, ``(N, D)``.
    """

    split: str
    metrics: ClassificationMetrics
    loss: float
    nfe: float
    utt_ids: list[str]
    dialog_ids: list[str]
    labels: np.ndarray
    predictions: np.ndarray
    representations: np.ndarray | None = None

    # The metrics read through, so that callers say result.weighted_f1 (one owner of the fields).
    accuracy = property(lambda self: self.metrics.accuracy)
    weighted_f1 = property(lambda self: self.metrics.weighted_f1)
    per_class_f1 = property(lambda self: self.metrics.per_class_f1)
    support = property(lambda self: self.metrics.support)
    confusion = property(lambda self: self.metrics.confusion)

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
            "labelled": self.metrics.num_labelled,
        }


def epoch_metrics(epoch: int, stats: dict[str, float], valid: EvalResult,
                  diagnostics: Mapping[str, float] | None = None) -> dict[str, float]:
    """What the training loop reports after an epoch: ``stats`` from
    :meth:`~dgnode.training.trainer.Trainer.train_epoch`, ``valid`` from its ``evaluate``, and
    the model's ``diagnostics`` (:meth:`~dgnode.training.trainer.Trainer.diagnostics`, e.g. the
    graph ODE's growth bound), each under :data:`~dgnode.tracking.runs.DIAGNOSTIC_PREFIX`, the
    prefix MLflow logging recognises."""
    extra = {f"{DIAGNOSTIC_PREFIX}{k}": float(v) for k, v in (diagnostics or {}).items()}
    return {
        "epoch": epoch,
        "train_loss": stats["train_loss"],
        "valid_wf1": valid.weighted_f1,
        "valid_acc": valid.accuracy,
        "valid_loss": valid.loss,
        "nfe": stats["nfe"],
        "epoch_time": stats["epoch_time"],
        **extra,
    }
