"""`dgnode compare`: the runs of an MLflow experiment side by side, plus a plot."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare the runs of an MLflow experiment (metric, solver, tolerances, NFE, status)",
        description="Print the runs of an experiment best first, with key hyperparameters, and optionally "
        "plot the metric against solver and tolerance.",
    )
    parser.add_argument("--experiment", required=True, help="MLflow experiment name")
    parser.add_argument("--metric", default="valid_wf1", help="metric to rank by (latest logged value; default valid_wf1)")
    parser.add_argument("--mode", choices=("max", "min"), default="max", help="whether higher or lower is better")
    parser.add_argument("--top", type=int, default=None, help="show only the best K runs")
    parser.add_argument("--parent", default=None, help="only the child runs of this parent run id (one search)")
    parser.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db")
    parser.add_argument("--plot", default=None, help="write a plot of the metric by solver and tolerance here (.png/.pdf/.svg)")
    parser.set_defaults(handler=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    from rich.console import Console

    from dgnode.tracking.compare import compare_runs, plot_comparison, render_table
    from dgnode.tracking.server import check_tracking_uri, resolve_tracking_uri

    if args.top is not None and args.top < 1:
        from dgnode.errors import DgnodeError

        raise DgnodeError(f"--top must be at least 1, got {args.top}")
    uri = resolve_tracking_uri(args.tracking_uri)
    check_tracking_uri(uri)
    rows = compare_runs(uri, args.experiment, metric=args.metric, top=args.top, mode=args.mode, parent_run_id=args.parent)
    console = Console(width=max(Console().width, 150))
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row.status] = statuses.get(row.status, 0) + 1
    summary = ", ".join(f"{count} {status.lower()}" for status, count in sorted(statuses.items()))
    console.print(render_table(rows, args.metric, title=f"{args.experiment}: {len(rows)} runs ({summary or 'none'})"))
    if args.plot:
        path = plot_comparison(rows, args.metric, args.plot)
        console.print(f"plot: {path}")
    return 0
