"""One split's evaluation as MLflow metrics and artifacts: per-class F1 table, confusion CSV and figure."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

__all__ = ["confusion_csv", "confusion_figure", "evaluation_metrics", "per_class_csv", "per_class_f1"]


def per_class_f1(values: Any, label_names: Sequence[str]) -> dict[str, float]:
    """``{label: f1}`` from one value per label (in ``label_names`` order) or a mapping."""
    if values is None:
        return {}
    if isinstance(values, Mapping):
        return {str(k): float(v) for k, v in values.items()}
    values = list(values)
    if len(values) != len(label_names):
        raise ValueError(f"per_class_f1 has {len(values)} values for {len(label_names)} labels {list(label_names)}")
    return {name: float(v) for name, v in zip(label_names, values)}


def evaluation_metrics(report: Mapping[str, Any], per_class: Mapping[str, float], split: str) -> dict[str, float]:
    """``{split}_acc``, ``{split}_wf1`` and ``{split}_f1.<label>`` of one evaluation report."""
    metrics = {f"{split}_acc": float(report["accuracy"]), f"{split}_wf1": float(report["weighted_f1"])}
    metrics.update({f"{split}_f1.{_metric_safe(name)}": value for name, value in per_class.items()})
    return metrics


def per_class_csv(per_class: Mapping[str, float]) -> str:
    return "label,f1\n" + "".join(f"{name},{value:.6f}\n" for name, value in per_class.items())


def confusion_csv(confusion: Sequence[Sequence[int]], label_names: Sequence[str]) -> str:
    """Rows = true class, columns = predicted, with the label names as headers."""
    rows = [[int(v) for v in row] for row in confusion]
    csv = "true\\pred," + ",".join(label_names) + "\n"
    return csv + "".join(f"{label_names[i]}," + ",".join(map(str, row)) + "\n" for i, row in enumerate(rows))


def confusion_figure(confusion: Sequence[Sequence[int]], label_names: Sequence[str], title: str = ""):
    """A matplotlib figure of a confusion matrix with counts and row-normalised shading."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    counts = np.asarray(confusion, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    size = 1.0 + 0.7 * len(label_names)
    figure, axis = plt.subplots(figsize=(size + 1.5, size))
    image = axis.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            axis.text(j, i, f"{int(counts[i, j])}", ha="center", va="center",
                      color="white" if shares[i, j] > 0.5 else "black", fontsize=8)
    axis.set_xticks(range(len(label_names)), label_names, rotation=45, ha="right")
    axis.set_yticks(range(len(label_names)), label_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(f"confusion ({title})" if title else "confusion")
    figure.colorbar(image, ax=axis, fraction=0.046, label="share of true class")
    figure.tight_layout()
    plt.close(figure)
    return figure


def _metric_safe(name: str) -> str:
    # MLflow metric keys allow alphanumerics, _ - . space / only.
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name)
