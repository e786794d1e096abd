"""Summaries and paired t-tests of a study's runs.

Scores are test-split fractions. For each (model, mode): mean and sample standard deviation
(``ddof = 1``) over seeds of weighted F1 and accuracy, and the mean per-class F1.

Paired t-tests (:func:`scipy.stats.ttest_rel`) pair runs by seed (same seed = same
initialisation stream and batch order), over the seeds where both sides finished:

* between models, within each mode: every pair ``(a, b)`` of models in study order;
* between modes, within each model: ``offline`` vs ``causal``.

``mean_diff`` is ``mean(a - b)``; with fewer than two pairs, or differences that are all
equal (e.g. a context-free model in both modes), the test is undefined and ``t``/``p_value``
are NaN. The p-values are per comparison, not corrected for multiple comparisons.
"""

from __future__ import annotations

import math
import warnings
from itertools import combinations
from typing import Sequence

import numpy as np
import pandas as pd

from dgnode.study.runner import RunRecord

__all__ = ["METRICS", "paired_test", "paired_tests", "runs_table", "summary_table"]

METRICS = ("weighted_f1", "accuracy")


def summary_table(records: Sequence[RunRecord], models: Sequence[str], modes: Sequence[str],
                  label_names: Sequence[str]) -> pd.DataFrame:
    """One row per (model, mode) in study order: ``runs``, ``failed``, ``{metric}_mean``,
    ``{metric}_std`` and ``f1_{label}_mean``."""
    rows = []
    for model in models:
        for mode in modes:
            group = [r for r in records if r.model == model and r.mode == mode]
            done = [r for r in group if r.ok]
            row: dict[str, object] = {"model": model, "mode": mode, "runs": len(done), "failed": len(group) - len(done)}
            for metric in METRICS:
                values = np.array([getattr(r, metric) for r in done], dtype=np.float64)
                row[f"{metric}_mean"] = float(values.mean()) if values.size else math.nan
                row[f"{metric}_std"] = float(values.std(ddof=1)) if values.size > 1 else math.nan
            for label in label_names:
                values = np.array([r.per_class_f1.get(label, math.nan) for r in done], dtype=np.float64)
                row[f"f1_{label}_mean"] = float(values.mean()) if values.size else math.nan
            rows.append(row)
    return pd.DataFrame(rows)


def paired_test(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """``(t, p)`` of :func:`scipy.stats.ttest_rel` (two-sided); NaN when undefined."""
    from scipy import stats

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size < 2:
        return math.nan, math.nan
    difference = a - b
    if np.all(difference == difference[0]):
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_rel(a, b)
    return float(result.statistic), float(result.pvalue)


def _paired_row(comparison: str, within: str, a_name: str, b_name: str, a: list[RunRecord], b: list[RunRecord],
                metric: str) -> dict[str, object]:
    a_by_seed = {r.seed: getattr(r, metric) for r in a if r.ok}
    b_by_seed = {r.seed: getattr(r, metric) for r in b if r.ok}
    seeds = sorted(set(a_by_seed) & set(b_by_seed))
    a_values = [a_by_seed[s] for s in seeds]
    b_values = [b_by_seed[s] for s in seeds]
    t, p = paired_test(a_values, b_values)
    return {
        "comparison": comparison,
        "within": within,
        "a": a_name,
        "b": b_name,
        "metric": metric,
        "pairs": len(seeds),
        "mean_a": float(np.mean(a_values)) if seeds else math.nan,
        "mean_b": float(np.mean(b_values)) if seeds else math.nan,
        "mean_diff": float(np.mean(np.subtract(a_values, b_values))) if seeds else math.nan,
        "t": t,
        "p_value": p,
    }


def paired_tests(records: Sequence[RunRecord], models: Sequence[str], modes: Sequence[str]) -> pd.DataFrame:
    """Models against each other within each mode, then modes within each model (see the
    module docstring); one row per (comparison, metric)."""
    def runs(model: str, mode: str) -> list[RunRecord]:
        return [r for r in records if r.model == model and r.mode == mode]

    rows = []
    for mode in modes:
        for a, b in combinations(models, 2):
            for metric in METRICS:
                rows.append(_paired_row("models", mode, a, b, runs(a, mode), runs(b, mode), metric))
    for model in models:
        for a, b in combinations(modes, 2):
            for metric in METRICS:
                rows.append(_paired_row("modes", model, a, b, runs(model, a), runs(model, b), metric))
    columns = ["comparison", "within", "a", "b", "metric", "pairs", "mean_a", "mean_b", "mean_diff", "t", "p_value"]
    return pd.DataFrame(rows, columns=columns)


def runs_table(records: Sequence[RunRecord], label_names: Sequence[str]) -> pd.DataFrame:
    """Every run: scores, per-class F1, epochs, time, status and error."""
    rows = []
    for r in records:
        row: dict[str, object] = {
            "model": r.model,
            "mode": r.mode,
            "seed": r.seed,
            "status": r.status,
            "weighted_f1": r.weighted_f1,
            "accuracy": r.accuracy,
        }
        for label in label_names:
            row[f"f1_{label}"] = r.per_class_f1.get(label)
        row.update(
            best_epoch=r.best_epoch,
            epochs_run=r.epochs_run,
            best_valid_weighted_f1=r.best_valid_weighted_f1,
            train_time_s=r.train_time_s,
            run_dir=r.run_dir,
            error=r.error,
        )
        rows.append(row)
    return pd.DataFrame(rows)
