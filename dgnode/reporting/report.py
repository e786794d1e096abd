"""The run report: a JSON file and a rich table in the paper's layout.

Table layout (as in the DGODE paper): one column per class in label order (IEMOCAP: happy, sad,
neutral, angry, excited, frustrated; MELD: neutral, surprise, fear, sadness, joy, disgust,
anger), then accuracy and weighted F1; one row for this run, one with the test support and, for a
DGODE run on IEMOCAP's six classes or MELD's seven, one row with the paper's numbers (MELD's
per-class cells are ``-``: only its weighted F1, 67.2, is recorded).
"""

from __future__ import annotations

from typing import Any

from dgnode.reporting.metrics import display_name, paper_reference

__all__ = ["key_value_table", "metrics_table", "models_table", "run_table"]


def metrics_table(evaluation: dict[str, Any], label_names: list[str], title: str = "Test metrics", model: str = "dgode"):
    """A rich Table of ``evaluation`` (``per_class_f1``, ``accuracy``, ``weighted_f1``, fractions)
    of a ``model`` run (the paper's row only for DGODE)."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("", style="bold")
    for name in label_names:
        table.add_column(display_name(name), justify="right")
    table.add_column("acc", justify="right")
    table.add_column("W-F1", justify="right", style="bold")
    per_class = evaluation["per_class_f1"]
    table.add_row(
        "this run",
        *[f"{100 * per_class[n]:.1f}" for n in label_names],
        f"{100 * evaluation['accuracy']:.1f}",
        f"{100 * evaluation['weighted_f1']:.1f}",
    )
    support = evaluation.get("support")
    if support:
        table.add_row("support", *[str(support[n]) for n in label_names], str(sum(support.values())), "")
    reference = paper_reference(label_names, model)
    if reference:
        table.add_row(
            "DGODE paper",
            *[f"{reference['per_class_f1'][n]:.1f}" if n in reference["per_class_f1"] else "-" for n in label_names],
            "",
            f"{reference['weighted_f1']:.1f}",
            style="dim",
        )
    return table


def run_table(report: dict[str, Any], title: str = "Run"):
    """Key facts of a run report as a two-column rich Table."""
    from rich.table import Table

    table = Table(title=title, show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key in ("model", "out_dir", "epochs_run", "best_epoch", "best_valid_weighted_f1", "stopped", "train_time_s", "mean_nfe"):
        if key in report and report[key] is not None:
            value = report[key]
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    return table


def models_table():
    """Every registered model with each of its options and the default (``dgnode models``)."""
    import dataclasses

    from rich.table import Table

    from dgnode.models.registry import available_models, model_spec
    from dgnode.options import flatten

    table = Table(title="models (set with --model.name NAME, options with --model.KEY VALUE)")
    for column in ("model", "option", "default"):
        table.add_column(column)
    for name in available_models():
        for key, value in flatten(dataclasses.asdict(model_spec(name).config_class())).items():
            table.add_row(name if key == "name" else "", key, repr(value))
    return table


def key_value_table(title: str, rows: list[tuple[str, str]]):
    """A two-column ``what | value`` table (the summaries of the corpus and features commands)."""
    from rich.table import Table

    table = Table(title=title, show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    return table
