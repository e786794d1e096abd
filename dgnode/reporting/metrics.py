"""Classification metrics of emotion recognition in conversation, and the paper's numbers.

Conventions: metrics are fractions in ``[0, 1]`` (sklearn's), tables show percent like the
papers. Utterances labelled ``-1`` (unlabelled) are ignored. Weighted F1 is the support-weighted
mean of per-class F1 over the classes present in the labels (sklearn ``average="weighted"``),
the number MERC papers report as "W-F1".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score

__all__ = [
    "ClassificationMetrics", "IEMOCAP_DISPLAY_NAMES", "MELD_CLASSES", "PAPER_DGODE_IEMOCAP", "PAPER_DGODE_MELD",
    "classification_metrics",
    "display_name", "paper_reference",
]

# DGODE, IEMOCAP 6-class, per-class F1 and weighted F1 in percent (Shou et al. 2024,
# arXiv 2412.02935, mean of 10 runs; copied from /work/shared/design.md).
PAPER_DGODE_IEMOCAP = {
    "source": "DGODE (Shou et al., 2024, arXiv 2412.02935), IEMOCAP 6-class, mean of 10 runs",
    "per_class_f1": {"hap": 71.8, "sad": 71.0, "neu": 74.9, "ang": 55.7, "exc": 78.6, "fru": 75.2},
    "weighted_f1": 72.8,
}
# DGODE on MELD (7 classes): the paper reports weighted F1 67.2 (mean of 10 runs); its per-class
# F1 values are not recorded in this project, so a MELD table shows the paper's row with the
# class cells empty rather than invented.
PAPER_DGODE_MELD = {
    "source": "DGODE (Shou et al., 2024, arXiv 2412.02935), MELD 7-class, mean of 10 runs (per-class F1 not recorded here)",
    "per_class_f1": {},
    "weighted_f1": 67.2,
}
MELD_CLASSES = ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")  # the paper's column order
PAPER_MODEL = "dgode"  # the model whose paper the reference numbers come from
IEMOCAP_DISPLAY_NAMES = {
    "hap": "happy",
    "sad": "sad",
    "neu": "neutral",
    "ang": "angry",
    "exc": "excited",
    "fru": "frustrated",
}
_IEMOCAP_ALIASES = {**{code: code for code in IEMOCAP_DISPLAY_NAMES}, **{v: k for k, v in IEMOCAP_DISPLAY_NAMES.items()}}


@dataclass
class ClassificationMetrics:
    """Metrics over the labelled utterances; ``confusion[i][j]``: true class i predicted as j."""

    accuracy: float
    weighted_f1: float
    per_class_f1: dict[str, float]
    support: dict[str, int]
    confusion: list[list[int]]
    num_labelled: int
    num_unlabelled: int

    def to_dict(self) -> dict:
        return asdict(self)


def classification_metrics(labels: Sequence[int] | np.ndarray, predictions: Sequence[int] | np.ndarray,
                           label_names: Sequence[str]) -> ClassificationMetrics:
    """Accuracy, weighted F1, per-class F1, support and the confusion matrix.

    ``labels`` may contain ``-1`` (ignored); classes are ``0..len(label_names)-1``. A class that
    is never true nor predicted gets F1 0 and support 0 (and weight 0 in the weighted F1).
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    predictions = np.asarray(predictions, dtype=np.int64).reshape(-1)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} differ in shape")
    num_classes = len(label_names)
    if labels.size and (labels.max() >= num_classes or labels.min() < -1):
        raise ValueError(f"labels outside [-1, {num_classes}) for {num_classes} label names")
    mask = labels >= 0
    y_true, y_pred = labels[mask], predictions[mask]
    classes = list(range(num_classes))
    if y_true.size == 0:
        raise ValueError("no labelled utterances to score")
    per_class = f1_score(y_true, y_pred, labels=classes, average=None, zero_division=0)
    weighted = f1_score(y_true, y_pred, labels=classes, average="weighted", zero_division=0)
    support = np.bincount(y_true, minlength=num_classes)
    return ClassificationMetrics(
        accuracy=float((y_true == y_pred).mean()),
        weighted_f1=float(weighted),
        per_class_f1={name: float(value) for name, value in zip(label_names, per_class)},
        support={name: int(count) for name, count in zip(label_names, support)},
        confusion=confusion_matrix(y_true, y_pred, labels=classes).tolist(),
        num_labelled=int(mask.sum()),
        num_unlabelled=int((~mask).sum()),
    )


def paper_reference(label_names: Sequence[str], model: str = "dgode") -> dict | None:
    """The DGODE paper's numbers keyed by *our* label names, when ``model`` is DGODE and
    ``label_names`` is the 6-class IEMOCAP set (codes ``hap`` or names ``happy``, any order) or
    MELD's 7 emotions (any order; only the weighted F1 is known, see :data:`PAPER_DGODE_MELD`);
    ``None`` otherwise (a baseline's table or figure has no business showing DGODE's numbers)."""
    if model != PAPER_MODEL:
        return None
    if sorted(str(name).lower() for name in label_names) == sorted(MELD_CLASSES):
        return {"source": PAPER_DGODE_MELD["source"], "per_class_f1": {}, "weighted_f1": PAPER_DGODE_MELD["weighted_f1"]}
    codes = [_IEMOCAP_ALIASES.get(str(name).lower()) for name in label_names]
    if None in codes or sorted(codes) != sorted(IEMOCAP_DISPLAY_NAMES):
        return None
    return {
        "source": PAPER_DGODE_IEMOCAP["source"],
        "per_class_f1": {name: PAPER_DGODE_IEMOCAP["per_class_f1"][code] for name, code in zip(label_names, codes)},
        "weighted_f1": PAPER_DGODE_IEMOCAP["weighted_f1"],
    }


def display_name(label: str) -> str:
    """``hap`` -> ``happy``; other names unchanged."""
    return IEMOCAP_DISPLAY_NAMES.get(label, label)
