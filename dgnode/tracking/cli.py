"""``dgnode compare``: the runs of an MLflow experiment side by side, plus a plot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dgnode.command import Command

__all__ = ["COMMANDS", "CompareOptions"]


@dataclass
class CompareOptions:
    """Print the runs of an experiment best first, with key hyperparameters, and optionally plot the
    metric against solver and tolerance.

    Attributes:
        experiment: MLflow experiment name
        metric: metric to rank by (latest logged value)
        mode: whether higher or lower is better
        top: show only the best K runs
        parent: only the child runs of this parent run id (one search)
        tracking_uri: MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)
        plot: write a plot of the metric by solver and tolerance here (.png/.pdf/.svg)
    """

    experiment: str
    metric: str = "valid_wf1"
    mode: Literal["max", "min"] = "max"
    top: int | None = None
    parent: str | None = None
    tracking_uri: str | None = None
    plot: str | None = None

    def __post_init__(self) -> None:
        if self.top is not None and self.top < 1:
            raise ValueError(f"--top must be at least 1, got {self.top}")


def run_compare(options: CompareOptions) -> int:
    from rich.console import Console

    from dgnode.tracking.compare import compare_runs, plot_comparison, render_table
    from dgnode.tracking.server import check_tracking_uri, resolve_tracking_uri

    uri = resolve_tracking_uri(options.tracking_uri)
    check_tracking_uri(uri)
    rows = compare_runs(uri, options.experiment, metric=options.metric, top=options.top, mode=options.mode,
                        parent_run_id=options.parent)
    console = Console(width=max(Console().width, 150))
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row.status] = statuses.get(row.status, 0) + 1
    summary = ", ".join(f"{count} {status.lower()}" for status, count in sorted(statuses.items()))
    console.print(render_table(rows, options.metric, title=f"{options.experiment}: {len(rows)} runs ({summary or 'none'})"))
    if options.plot:
        path = plot_comparison(rows, options.metric, options.plot)
        console.print(f"plot: {path}")
    return 0


COMMANDS = (
    Command("compare", CompareOptions, run_compare,
            help="compare the runs of an MLflow experiment (metric, solver, tolerances, NFE, status)"),
)
