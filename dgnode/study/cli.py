"""``dgnode study``: train models x {offline, causal} x seeds and write the comparison tables."""

from __future__ import annotations

from dataclasses import dataclass

from dgnode.command import Command
from dgnode.study.spec import StudySpec

__all__ = ["COMMANDS", "StudyOptions"]


@dataclass
class StudyOptions:
    """Train every model in every mode (offline: the model's own future window; causal: wf=0)
    over N seeds, then write study.md and study.csv: mean and std of weighted F1 and accuracy,
    per-class F1, and paired t-tests between models (per mode) and between modes (per model).

    Attributes:
        quiet: no progress bar
    """

    quiet: bool = False


def run_study_command(options: StudyOptions, spec: StudySpec) -> int:
    from rich.console import Console
    from rich.table import Table

    from dgnode.features.store import FeatureStore
    from dgnode.study.report import mean_std, p_text, write_study
    from dgnode.study.runner import run_study
    from dgnode.study.stats import paired_tests, summary_table

    FeatureStore.open(spec.store)  # fail on a wrong path before building anything
    result = run_study(spec, progress=not options.quiet)
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


COMMANDS = (
    Command("study", StudyOptions, run_study_command, config=StudySpec,
            help="causal study: train models in offline and causal mode over seeds, compare with paired t-tests"),
)
