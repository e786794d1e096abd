"""Runs of one experiment side by side: ``dgnode compare``.

One row per run: the chosen metric, the key hyperparameters (solver, rtol, atol, T, hops, wp,
wf, lr), the last epoch's NFE, wall-clock duration and status, sorted best first. Params are
matched by the last component of their flattened config key (``model.ode.rtol`` -> ``rtol``),
so the table does not depend on where a trainer nests them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dgnode.tracking.runs import PARENT_TAG, TrackingError

__all__ = ["KEY_PARAMS", "RunRow", "compare_runs", "plot_comparison", "render_table"]

# Column -> accepted last components of a flattened config key, first match wins.
KEY_PARAMS: dict[str, tuple[str, ...]] = {
    "solver": ("solver", "method"),
    "rtol": ("rtol",),
    "atol": ("atol",),
    "T": ("T", "t_end", "integration_time", "time"),
    "hops": ("hops", "num_hops", "mixhop_hops"),
    "wp": ("wp", "window_past"),
    "wf": ("wf", "window_future"),
    "lr": ("lr", "learning_rate"),
}


@dataclass
class RunRow:
    run_id: str
    run_name: str
    status: str
    metric: float | None
    params: dict[str, str]
    nfe: float | None
    duration_s: float | None
    parent_run_id: str | None


def compare_runs(
    tracking_uri: str,
    experiment: str,
    metric: str = "valid_wf1",
    top: int | None = None,
    mode: str = "max",
    parent_run_id: str | None = None,
) -> list[RunRow]:
    """The runs of ``experiment`` (children of ``parent_run_id`` if given), best ``metric`` first.

    ``metric`` is the run's latest logged value. Runs without it (a trial that failed before
    its first epoch, a search's parent run) come last, in start order.
    """
    from mlflow import MlflowClient

    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = sorted(e.name for e in client.search_experiments(max_results=200))
        raise TrackingError(f"no experiment named {experiment!r} at {tracking_uri}; experiments there: {', '.join(names) or 'none'}")
    query = f"tags.`{PARENT_TAG}` = '{parent_run_id}'" if parent_run_id else ""
    runs, token = [], None
    while True:
        page = client.search_runs([found.experiment_id], filter_string=query, max_results=1000,
                                  order_by=["attributes.start_time ASC"], page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    rows = [_row(run, metric) for run in runs]
    sign = -1.0 if mode == "max" else 1.0
    rows.sort(key=lambda r: (r.metric is None or math.isnan(r.metric), sign * r.metric if r.metric is not None and not math.isnan(r.metric) else 0.0))
    return rows[:top] if top else rows


def _row(run: Any, metric: str) -> RunRow:
    params = run.data.params
    picked = {}
    for column, names in KEY_PARAMS.items():
        picked[column] = _find_param(params, names)
    end = run.info.end_time
    duration = (end - run.info.start_time) / 1000.0 if end and run.info.start_time else None
    return RunRow(
        run_id=run.info.run_id,
        run_name=run.info.run_name or run.info.run_id[:8],
        status=run.info.status,
        metric=run.data.metrics.get(metric),
        params=picked,
        nfe=run.data.metrics.get("nfe"),
        duration_s=duration,
        parent_run_id=run.data.tags.get(PARENT_TAG),
    )


# Params a search's parent run logs about the search itself, not about a trained config.
SEARCH_PARAM_PREFIXES = ("space.", "fixed.", "tune.", "search.")


def _find_param(params: dict[str, str], names: tuple[str, ...]) -> str:
    for name in names:
        if name in params:
            return params[name]
        for key in sorted(params):
            if key.rsplit(".", 1)[-1] == name and not key.startswith(SEARCH_PARAM_PREFIXES):
                return params[key]
    return ""


def render_table(rows: list[RunRow], metric: str, title: str = ""):
    """A :class:`rich.table.Table` of ``rows``."""
    from rich.table import Table

    table = Table(title=title or None)
    table.add_column("#", justify="right")
    table.add_column("run")
    table.add_column(metric, justify="right")
    for column in KEY_PARAMS:
        table.add_column(column, justify="right")
    table.add_column("nfe", justify="right")
    table.add_column("duration", justify="right")
    table.add_column("status")
    colours = {"FINISHED": "green", "FAILED": "red", "KILLED": "yellow", "RUNNING": "cyan"}
    for rank, row in enumerate(rows, 1):
        table.add_row(
            str(rank),
            row.run_name,
            "-" if row.metric is None else f"{row.metric:.4f}",
            *(_short(row.params[c]) for c in KEY_PARAMS),
            "-" if row.nfe is None else f"{row.nfe:.0f}",
            "-" if row.duration_s is None else f"{row.duration_s:.1f}s",
            f"[{colours.get(row.status, 'white')}]{row.status}[/]",
        )
    return table


def plot_comparison(rows: list[RunRow], metric: str, path: str | Path) -> Path:
    """Two panels: ``metric`` per solver (strip plot), and ``metric`` against rtol per solver.

    Fixed-step solvers (euler, midpoint, rk4) ignore tolerances; they appear in the left panel
    only. Runs without the metric are left out. Returns the written path (PNG, PDF, SVG by suffix).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [r for r in rows if r.metric is not None and not math.isnan(r.metric)]
    solvers = sorted({r.params["solver"] or "?" for r in scored})
    figure, (by_solver, by_tolerance) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = plt.get_cmap("tab10")
    for index, solver in enumerate(solvers):
        values = [r.metric for r in scored if (r.params["solver"] or "?") == solver]
        jitter = [index + 0.08 * ((k % 5) - 2) for k in range(len(values))]
        by_solver.scatter(jitter, values, color=colours(index % 10), alpha=0.8)
        with_rtol = [(float(r.params["rtol"]), r.metric) for r in scored
                     if (r.params["solver"] or "?") == solver and _is_number(r.params["rtol"])
                     and solver not in ("euler", "midpoint", "rk4", "explicit_adams", "implicit_adams")]
        if with_rtol:
            xs, ys = zip(*sorted(with_rtol))
            by_tolerance.scatter(xs, ys, color=colours(index % 10), label=solver, alpha=0.8)
    by_solver.set_xticks(range(len(solvers)), solvers)
    by_solver.set_xlabel("solver")
    by_solver.set_ylabel(metric)
    by_solver.set_title(f"{metric} by solver ({len(scored)} runs)")
    by_tolerance.set_xscale("log")
    by_tolerance.set_xlabel("rtol (adaptive solvers)")
    by_tolerance.set_ylabel(metric)
    by_tolerance.set_title(f"{metric} vs tolerance")
    if by_tolerance.get_legend_handles_labels()[0]:
        by_tolerance.legend(fontsize=8)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except (TypeError, ValueError):
        return False


def _short(text: str) -> str:
    if _is_number(text) and any(c in text for c in ".eE") :
        return f"{float(text):.3g}"
    return text or "-"
