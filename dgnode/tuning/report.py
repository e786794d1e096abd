"""What ``dgnode tune`` shows of a search's outcome, and the exit code that goes with it."""

from __future__ import annotations

from typing import Any

__all__ = ["outcome_report"]


def outcome_report(outcome: Any) -> tuple[list[Any], int]:
    """Rich renderables for a :class:`~dgnode.tuning.search.SearchOutcome`, and the exit code: 0
    when the search is complete (now or before), 130 when it was interrupted and can be resumed."""
    from rich.table import Table

    if outcome.already_complete:
        return [f"the search in {outcome.out_dir} is already complete: nothing to resume "
                f"(best trial {outcome.best_trial_id}, model {outcome.model_uri})"], 0
    table = Table(title=f"search {outcome.parent_run_id[:8]} in {outcome.out_dir}")
    for column in ("trial", "status", "epochs", "best valid wF1", "note"):
        table.add_column(column, justify="right" if column in ("epochs", "best valid wF1") else "left")
    for trial in sorted(outcome.trials, key=lambda t: -(t.best_valid_wf1 or -1.0)):
        colour = {"TERMINATED": "green", "ERROR": "red"}.get(trial.status, "yellow")
        note = trial.error or ("best" if trial.trial_id == outcome.best_trial_id else "")
        table.add_row(trial.trial_id, f"[{colour}]{trial.status}[/]", str(trial.epochs),
                      "-" if trial.best_valid_wf1 is None else f"{trial.best_valid_wf1:.4f}", note[:100])
    done = sum(t.status in ("TERMINATED", "ERROR") for t in outcome.trials)
    failed = sum(t.status == "ERROR" for t in outcome.trials)
    if outcome.interrupted:
        return [table, f"[yellow]search interrupted after {done} finished trial(s); continue with: "
                       f"dgnode tune --resume --out {outcome.out_dir}[/]"], 130
    test = outcome.test
    line = (f"{done} trials ({failed} failed) in {outcome.seconds:.0f}s; best trial {outcome.best_trial_id}: "
            f"valid wF1 {outcome.best_valid_wf1:.4f}"
            + (f", test wF1 {test['weighted_f1']:.4f}, test acc {test['accuracy']:.4f}" if test else "")
            + f"; model {outcome.model_uri} (version {outcome.model_version}); MLflow {outcome.tracking_uri}")
    if test and test.get("per_class_f1"):
        from dgnode.reporting.report import metrics_table

        return [table, metrics_table(test, list(test["per_class_f1"]), title="Best trial on the test split",
                                     model=outcome.model or ""), line], 0
    return [table, line], 0
