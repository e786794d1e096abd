"""The pipeline's final report: what each stage did, the test split side by side (DGODE, the
context-free MLP, the majority class), the search's best trial, where the plots are, and how to
open the MLflow UI on the runs.

``write_plots`` draws the test figures into ``WORKDIR/plots``: the confusion matrices of DGODE
and of the MLP, and DGODE's per-class F1 beside the MLP's. The DGODE paper's numbers are not
drawn here: a generated corpus is not IEMOCAP (run reports of real runs carry them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["mlflow_ui_hint", "summary_table", "write_plots"]


def write_plots(out_dir: Any, dgode_test: dict[str, Any] | None, baselines: Any, label_names: list[str]) -> dict[str, Any]:
    """The test figures (see the module docstring) into ``out_dir`` (a directory or an ``s3://``
    prefix); ``{name: Location}``, empty without a test split."""
    from dgnode.reporting.plots import plot_confusion, plot_per_class_f1
    from dgnode.storage import resolve

    out_dir = resolve(out_dir)
    plots: dict[str, Any] = {}
    if dgode_test and dgode_test.get("confusion") is not None:
        plots["confusion (DGODE)"] = plot_confusion(dgode_test["confusion"], label_names, out_dir / "confusion_dgode.png",
                                                    title="DGODE, best trial: test confusion")
    if baselines is not None and baselines.mlp.get("confusion") is not None:
        plots["confusion (MLP)"] = plot_confusion(baselines.mlp["confusion"], label_names, out_dir / "confusion_mlp.png",
                                                  title="Context-free MLP: test confusion")
    if dgode_test and dgode_test.get("per_class_f1"):
        reference = ({name: 100.0 * value for name, value in baselines.mlp["per_class_f1"].items()}
                     if baselines is not None else None)
        plots["per-class F1"] = plot_per_class_f1(dgode_test["per_class_f1"], out_dir / "per_class_f1.png",
                                                  reference=reference, reference_label="context-free MLP",
                                                  title="Per-class F1 on test: DGODE (this run) vs the MLP")
    return plots


def summary_table(result: Any):
    """A rich renderable: the stage table, the test comparison, the best trial, plots, MLflow."""
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = [_stage_table(result)]
    comparison = _test_table(result)
    if comparison is not None:
        parts.append(comparison)
    lines = []
    search = result.search
    if search.best_trial_id:
        params = ", ".join(f"{key}={_short(value)}" for key, value in sorted(search.best_params.items()))
        lines.append(f"best trial {search.best_trial_id} (valid wF1 {search.best_valid_wf1:.3f}): {params}")
    if search.model_uri:
        lines.append(f"registered model: {search.model_uri} (version {search.model_version})")
    if result.plots:
        folder = next(iter(result.plots.values())).parent
        lines.append(f"plots: {_shown_path(folder)}/ ({', '.join(p.name for p in result.plots.values())})")
    if result.baselines is not None:
        lines.append(f"MLP run: {_shown_path(result.baselines.mlp_dir)}/")
    lines.append(mlflow_ui_hint(result.tracking_uri))
    parts.append(Text("\n".join(lines)))
    return Group(*parts)


def _stage_table(result: Any):
    from rich.table import Table

    table = Table(title="dgnode pipeline", title_justify="left")
    table.add_column("stage")
    table.add_column("result")
    table.add_column("seconds", justify="right")
    scan, extraction, search, seconds = result.scan, result.extraction, result.search, result.stage_seconds
    if "synth corpus" in seconds:
        cues = "with emotion cues" if result.synth is None or result.synth.cues else "WITHOUT emotion cues"
        table.add_row("synth corpus", f"{_shown_path(result.corpus_root)}/ ({cues})", f"{seconds['synth corpus']:.1f}")
    splits = scan.get("splits", {})
    labelled = ", ".join(f"{split} {splits.get(split, {}).get('labelled', 0)}" for split in ("train", "valid", "test"))
    table.add_row("scan", f"{scan.get('dialogues')} dialogues, {scan.get('labelled')} of {scan.get('utterances')} "
                  f"utterances labelled ({labelled})", f"{seconds.get('scan', 0):.1f}")
    already = f", {extraction['already_stored']} already there" if extraction["already_stored"] else ""
    table.add_row("extract", f"{extraction['stored']} stored{already}, {extraction['failed']} failed "
                  f"({extraction['utterances_per_second']:.1f} utt/s)", f"{seconds.get('extract', 0):.1f}")
    failed = sum(t.status == "ERROR" for t in search.trials)
    best = "n/a" if search.best_valid_wf1 is None else f"{search.best_valid_wf1:.3f}"
    table.add_row("tune + test", f"{len(search.trials)} DGODE trials{f' ({failed} failed)' if failed else ''}, "
                  f"best valid wF1 {best}, tested once", f"{seconds.get('tune + test', 0):.1f}")
    if result.baselines is not None:
        table.add_row("baselines", "context-free MLP, majority class", f"{seconds.get('baselines', 0):.1f}")
    table.add_row("total", "", f"{sum(seconds.values()):.1f}", style="bold")
    return table


def _test_table(result: Any):
    from rich.table import Table

    test = result.search.test or {}
    if not test:
        return None
    support = test.get("support") or {}
    title = "test split" + (f", {sum(support.values())} labelled utterances" if support else "")
    table = Table(title=title, title_justify="left")
    table.add_column("model")
    table.add_column("weighted F1", justify="right")
    table.add_column("accuracy", justify="right")
    table.add_column("sees")
    table.add_row("DGODE (best trial)", f"{test['weighted_f1']:.3f}", f"{test['accuracy']:.3f}", "the conversation",
                  style="bold")
    baselines = result.baselines
    if baselines is not None:
        table.add_row("context-free MLP", f"{baselines.mlp['weighted_f1']:.3f}", f"{baselines.mlp['accuracy']:.3f}",
                      "one utterance")
        table.add_row(f"majority class ({baselines.majority_class})", f"{baselines.majority['weighted_f1']:.3f}",
                      f"{baselines.majority['accuracy']:.3f}", "nothing")
    return table


def mlflow_ui_hint(tracking_uri: str) -> str:
    """How to look at the runs this pipeline recorded."""
    if tracking_uri.startswith("http"):
        return f"MLflow: open {tracking_uri} in a browser (the tracking server this run used)."
    return (
        f"MLflow UI: .venv/bin/mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1 --port 5000\n"
        "then browse http://127.0.0.1:5000: the search run holds the trials, best-on-test and baseline-mlp"
    )


def _shown_path(path: Any) -> str:
    """Relative to the current directory when inside it (shorter lines), else absolute; an
    ``s3://`` URI as it is."""
    if str(path).startswith("s3://"):
        return str(path)
    path = Path(str(path))
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
