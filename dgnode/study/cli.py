"""`dgnode study`: train models x {offline, causal} x seeds and write the comparison tables."""

from __future__ import annotations

import argparse


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    """The study's options (shared by ``dgnode study`` and ``jobs/study.py``)."""
    parser.add_argument("--store", required=True, help="feature store directory every run trains on")
    parser.add_argument("--models", required=True, help="comma-separated model names, e.g. dgode,corect")
    parser.add_argument("--modes", default="offline,causal", help="comma-separated subset of offline,causal (default both)")
    parser.add_argument("--seeds", type=int, default=3, help="runs per model and mode (seeds FIRST..FIRST+N-1; default 3)")
    parser.add_argument("--first-seed", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--out", required=True, help="output directory: runs/, study.md, study.csv, study_tests.csv, study_runs.csv")
    parser.add_argument("--config-dir", default=None,
                        help="directory of YAML configs: {model}_{profile}.yaml, {model}.yaml or baseline_{model}.yaml "
                             "(default: the registry's defaults)")
    parser.add_argument("--profile", default=None, help="config suffix to pick, e.g. fast -> dgode_fast.yaml, corect_fast.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every run (train.epochs=5) or one model's runs (corect:model.hidden=64); repeatable")
    parser.add_argument("--runner", choices=("auto", "local", "ray"), default="auto",
                        help="local: one run after another; ray: Ray tasks; auto: Ray if initialised or RAY_ADDRESS is set")
    parser.add_argument("--cpus-per-run", type=int, default=1, help="CPUs (and torch threads) per Ray task (default 1)")
    parser.add_argument("--no-reuse", action="store_true", help="retrain runs that already finished with the same config")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "study",
        help="causal study: train models in offline and causal mode over seeds, compare with paired t-tests",
        description="Train every model in every mode (offline: the model's own future window; causal: wf=0) "
        "over N seeds, then write study.md and study.csv: mean and std of weighted F1 and accuracy, "
        "per-class F1, and paired t-tests between models (per mode) and between modes (per model).",
    )
    add_study_arguments(parser)
    parser.set_defaults(handler=study_command)


def spec_from_args(args: argparse.Namespace):
    from dgnode.study.spec import StudySpec

    return StudySpec(
        store=args.store,
        models=[m.strip() for m in args.models.split(",") if m.strip()],
        modes=[m.strip() for m in args.modes.split(",") if m.strip()],
        seeds=args.seeds,
        first_seed=args.first_seed,
        out=args.out,
        config_dir=args.config_dir,
        profile=args.profile,
        overrides=list(args.overrides),
        runner=args.runner,
        cpus_per_run=args.cpus_per_run,
        reuse=not args.no_reuse,
    )


def study_command(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from dgnode.features.store import FeatureStore
    from dgnode.study.report import mean_std, p_text, write_study
    from dgnode.study.runner import run_study
    from dgnode.study.stats import paired_tests, summary_table

    spec = spec_from_args(args)
    FeatureStore.open(spec.store)  # fail on a wrong path before building anything
    result = run_study(spec, progress=not args.quiet)
    paths = write_study(result)

    console = Console(width=max(Console().width, 120))
    summary = summary_table(result.records, spec.models, spec.modes, result.label_names)
    table = Table(title=f"study: {len(result.records)} runs ({result.runner}), test split, percent")
    for column in ("model", "mode", "runs", "weighted F1", "accuracy"):
        table.add_column(column, justify="left" if column in ("model", "mode") else "right")
    for _, row in summary.iterrows():
        table.add_row(row["model"], row["mode"], f"{row['runs']}" + (f" ({row['failed']} failed)" if row["failed"] else ""),
                      mean_std(row["weighted_f1_mean"], row["weighted_f1_std"]), mean_std(row["accuracy_mean"], row["accuracy_std"]))
    console.print(table)
    tests = paired_tests(result.records, spec.models, spec.modes)
    tests = tests[tests["metric"] == "weighted_f1"]
    if not tests.empty:
        table = Table(title="paired t-tests on weighted F1 (over seeds)")
        for column in ("within", "a - b", "pairs", "mean diff (points)", "p"):
            table.add_column(column, justify="left" if column in ("within", "a - b") else "right")
        for _, row in tests.iterrows():
            diff = "n/a" if row["mean_diff"] != row["mean_diff"] else f"{100 * row['mean_diff']:+.2f}"
            table.add_row(row["within"], f"{row['a']} - {row['b']}", str(row["pairs"]), diff, p_text(row["p_value"]))
        console.print(table)
    for record in result.failures:
        console.print(f"[red]failed[/red] {record.model}/{record.mode}/seed{record.seed}: {record.error}")
    console.print(f"wrote {paths['markdown']}, {paths['summary']}, {paths['tests']}, {paths['runs']}")
    return 1 if result.failures else 0
