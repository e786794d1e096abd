"""Reading a finished (or interrupted) Tune experiment: which trials ran to their end, their
summaries, and the MLflow runs a search must not leave RUNNING."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["SELECTION_METRIC", "TrialSummary", "plain", "sweep_runs", "trial_finished", "trial_summaries", "tune_trials"]

SELECTION_METRIC = "best_valid_wf1"


@dataclass
class TrialSummary:
    trial_id: str
    status: str  # TERMINATED (returned or stopped by ASHA), ERROR, or UNFINISHED (interrupted)
    epochs: int
    best_valid_wf1: float | None
    params: dict[str, Any]
    error: str | None = None


def tune_trials(results) -> list:
    """The Tune ``Trial`` objects behind a ``ResultGrid`` (``ResultGrid.num_terminated`` reads
    the same list)."""
    return list(results._experiment_analysis.trials)


def trial_finished(trial: Any, ledger: dict[str, str] | None = None) -> bool:
    """Whether a trial ran to its end: failed, returned, or stopped by the scheduler. The
    search's :class:`~dgnode.tuning.callbacks.TrialLedger` is the authority; Tune's state is
    the fallback for searches recorded without one.

    Status alone cannot tell: after an interrupt Tune marks the trials it was still running
    (and those not yet started) TERMINATED in memory, while the saved experiment state keeps
    them unfinished for ``Tuner.restore``. Tune sets ``done`` in the last result exactly when a
    trial returned or its scheduler decided to stop it.
    """
    if ledger and trial.trial_id in ledger:
        return True
    return trial.status == "ERROR" or (trial.status == "TERMINATED" and bool((trial.last_result or {}).get("done")))


def trial_summaries(results, ledger: dict[str, str] | None = None) -> list[TrialSummary]:
    summaries = []
    for trial in tune_trials(results):
        last = trial.last_result or {}
        best = last.get(SELECTION_METRIC)
        error = None
        if trial.status == "ERROR":
            from dgnode.tuning.mlflow_callback import trial_error_message

            error = trial_error_message(trial)
        summaries.append(TrialSummary(
            trial_id=trial.trial_id,
            status=(ledger or {}).get(trial.trial_id) or (trial.status if trial_finished(trial) else "UNFINISHED"),
            epochs=int(last.get("epoch", -1)) + 1,
            best_valid_wf1=float(best) if isinstance(best, (int, float)) else None,
            params={k: plain(v) for k, v in trial.config.items()},
            error=error,
        ))
    return summaries


def sweep_runs(uri, experiment_id, parent_run_id, results, ledger: dict[str, str] | None = None) -> dict[str, str]:
    """End child runs still RUNNING: by their trial's Tune status, KILLED when unfinished; a trial run
    whose trial the (restored) search does not know is deleted (see the comment in ``decide``)."""
    from dgnode.tracking.runs import end_dangling_runs
    from dgnode.tuning.mlflow_callback import KIND_TAG, TRIAL_TAG

    trials = {t.trial_id: t for t in tune_trials(results)}

    def decide(run) -> str:
        trial = trials.get(run.data.tags.get(TRIAL_TAG, ""))
        if trial is None and run.data.tags.get(KIND_TAG) == "trial":
            # A trial the killed driver started before Tune saved it: the restored search never
            # runs it (its budget went to a new trial), so its run would count one trial twice.
            return "DELETED"
        if trial is None or not trial_finished(trial, ledger):
            return "KILLED"  # unfinished: a resumed search reopens the run
        return "FAILED" if (ledger or {}).get(trial.trial_id, trial.status) == "ERROR" else "FINISHED"

    return end_dangling_runs(uri, experiment_id, parent_run_id, decide=decide)


def plain(value: Any) -> Any:
    """A numpy scalar as its Python value (Optuna and Tune hand out both)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value
