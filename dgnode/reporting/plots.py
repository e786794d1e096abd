"""Figures of an evaluation: confusion matrix, per-class F1 bars, t-SNE of representations.

matplotlib runs with the Agg backend (files only, no display needed). Each figure is rendered to
PNG bytes in memory and written whole to its location, a local path or an ``s3://`` URI
(:func:`dgnode.storage.resolve`); every function returns that :class:`~dgnode.storage.Location`.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from dgnode.reporting.metrics import display_name
from dgnode.storage import Location, resolve

__all__ = ["plot_confusion", "plot_per_class_f1", "plot_tsne"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(confusion: Sequence[Sequence[int]], label_names: Sequence[str], path: "str | Path | Location",
                   title: str = "Confusion matrix") -> Location:
    """Row-normalised confusion matrix (true class per row), with the raw counts printed."""
    plt = _pyplot()
    counts = np.asarray(confusion, dtype=np.int64)
    rows = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=float), where=rows > 0)
    names = [display_name(n) for n in label_names]
    size = 1.0 + 0.8 * len(names)
    figure, axes = plt.subplots(figsize=(size + 1.5, size))
    image = axes.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of true class")
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            axes.text(j, i, str(counts[i, j]), ha="center", va="center",
                      color="white" if fractions[i, j] > 0.5 else "black", fontsize=8)
    figure.tight_layout()
    return _save(figure, path, plt)


def plot_per_class_f1(per_class_f1: dict[str, float], path: "str | Path | Location",
                      reference: dict[str, float] | None = None, reference_label: str = "paper",
                      title: str = "Per-class F1") -> Location:
    """Bars of our per-class F1 (percent), beside a reference (percent) when given."""
    plt = _pyplot()
    names = list(per_class_f1)
    ours = [100.0 * per_class_f1[n] for n in names]
    positions = np.arange(len(names))
    width = 0.4 if reference else 0.6
    figure, axes = plt.subplots(figsize=(1.5 + 1.1 * len(names), 4))
    axes.bar(positions - (width / 2 if reference else 0), ours, width, label="this run")
    if reference:
        axes.bar(positions + width / 2, [reference.get(n, np.nan) for n in names], width, label=reference_label)
        axes.legend()
    axes.set_xticks(positions, [display_name(n) for n in names], rotation=30, ha="right")
    axes.set_ylabel("F1 (%)")
    axes.set_ylim(0, 100)
    axes.set_title(title)
    figure.tight_layout()
    return _save(figure, path, plt)


def plot_tsne(representations: np.ndarray, labels: np.ndarray, label_names: Sequence[str],
              path: "str | Path | Location", max_points: int = 2000, seed: int = 0,
              title: str = "t-SNE of utterance representations") -> Location:
    """2-D t-SNE of the labelled utterances' representations, coloured by true class.

    At most ``max_points`` utterances (a seeded uniform subsample): t-SNE is quadratic-ish and
    a few thousand points already show the cluster structure.
    """
    from sklearn.manifold import TSNE

    plt = _pyplot()
    representations = np.asarray(representations, dtype=np.float32)
    labels = np.asarray(labels).reshape(-1)
    keep = np.flatnonzero(labels >= 0)
    if keep.size > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(keep, size=max_points, replace=False))
    if keep.size < 5:
        raise ValueError(f"t-SNE needs at least 5 labelled points, got {keep.size}")
    perplexity = float(min(30.0, (keep.size - 1) / 3.0))
    embedded = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(representations[keep])
    figure, axes = plt.subplots(figsize=(6.5, 5.5))
    colours = plt.get_cmap("tab10")
    for index, name in enumerate(label_names):
        chosen = labels[keep] == index
        if chosen.any():
            axes.scatter(embedded[chosen, 0], embedded[chosen, 1], s=6, color=colours(index % 10), label=display_name(name))
    axes.legend(markerscale=3, fontsize=8)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(f"{title} (n={keep.size})")
    figure.tight_layout()
    return _save(figure, path, plt)


def _save(figure, path: "str | Path | Location", plt) -> Location:
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=110)
    finally:
        plt.close(figure)
    return resolve(path).write_bytes(buffer.getvalue())
