"""Every Tune trial as an MLflow run under the search's parent run, written by the driver.

:class:`MLflowTrialCallback` is a ``ray.tune.Callback``: it runs in the driver process, so all
MLflow writes of a search come from one process. That is a deliberate choice over logging from
inside the trials:

* a trial stopped by ASHA or failing on the NFE cap may have its actor torn down before its own
  ``finally`` block runs; the driver sees every trial's start, results, completion and error
  (``on_trial_*``) and ends each run with the matching status, so no run is left RUNNING;
* a single writer is safe on a SQLite tracking URI (no ``database is locked`` from concurrent
  trial processes) and needs no MLflow credentials on the workers;
* the same path serves one-process trials and Ray Train trials, whose per-epoch metrics reach
  Tune through ``TuneReportCallback``.

Run life cycle: ``on_trial_start`` creates the run (tags ``mlflow.parentRunId``,
``dgnode.trial_id``, provenance; params: the trial's fully resolved, flattened config) or, for a
trial resumed after an interrupted search, reopens its run. ``on_trial_result`` logs the epoch
metrics at ``step = epoch``. ``on_trial_complete`` ends it FINISHED with ``dgnode.stop_reason``
(``completed``, ``patience`` or ``scheduler`` for an ASHA stop); ``on_trial_error`` ends it FAILED
with the error in ``dgnode.error``. :func:`dgnode.tracking.runs.end_dangling_runs` at the end of
the search is the backstop. A server lost mid-search stops the search with its state saved and
the writes it missed kept for the resume (:class:`MLflowTrialCallback`, :class:`TrackingLostError`).
"""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path
from typing import Any

from ray.tune import Callback

from dgnode.errors import EnvironmentFault
from dgnode.tracking.runs import (DIAGNOSTIC_PREFIX, EPOCH_METRICS, ERROR_TAG, PARENT_TAG, STOP_REASON_TAG, RunStatus,
                                  TrackedRun)

__all__ = ["EPOCHS_TAG", "KIND_TAG", "MLflowTrialCallback", "TRIAL_TAG", "TrackingLostError", "trial_error_message"]

TRIAL_TAG = "dgnode.trial_id"
KIND_TAG = "dgnode.run_kind"
EPOCHS_TAG = "dgnode.epochs_run"


class TrackingLostError(EnvironmentFault):
    """The tracking server went away during a search; its state is saved (exit code 1)."""

    def __init__(self, uri: str, reason: str, out_dir: str | Path) -> None:
        super().__init__(f"MLflow tracking server {uri} is unreachable ({reason}); the search state is saved: "
                         f"restart the server and run dgnode tune --resume --out {out_dir}")


class MLflowTrialCallback(Callback):
    """See the module docstring. ``resolve_config(trial_config) -> TrainConfig`` gives a trial's
    full config (params); ``max_epochs`` tells an ASHA stop from a completed trial.

    A lost tracking server: every hook turns its trial event into a plain write (a tuple) and
    applies it. When one fails and the server does not answer, the write and every later one are
    kept in :attr:`pending` (saved with the experiment state), :attr:`lost` says why, and the
    driver stops the way Ctrl-C stops it (SIGINT, as :class:`~dgnode.tuning.callbacks.SessionStop`)
    so Tune saves the experiment. A resumed search applies the pending writes first, in order
    (:meth:`setup`). Writes are idempotent: re-logged params keep their values, ends are final.
    """

    # Why the server was found gone in this process (None: it was not); class-level because a
    # resumed search runs the callback restored from the experiment, not the one it built.
    lost: str | None = None

    def __init__(
        self,
        tracking_uri: str,
        experiment_id: str,
        parent_run_id: str,
        resolve_config: Any,
        max_epochs: int,
        tags: dict[str, str] | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.resolve_config = resolve_config
        self.max_epochs = max_epochs
        self.tags = dict(tags or {})
        self.run_ids: dict[str, str] = {}
        self.finished: dict[str, str] = {}
        self.pending: list[tuple] = []

    # Tune checkpoints callback state with the experiment, so a resumed search keeps the map.
    def get_state(self) -> dict[str, Any]:
        return {"run_ids": dict(self.run_ids), "finished": dict(self.finished), "pending": list(self.pending)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.run_ids = dict(state.get("run_ids", {}))
        self.finished = dict(state.get("finished", {}))
        self.pending = list(state.get("pending", []))

    # -- Tune hooks ------------------------------------------------------------------------------
    def setup(self, **info: Any) -> None:
        writes, self.pending = self.pending, []
        for write in writes:
            self._write(write)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write(("start", trial.trial_id, dict(trial.config)))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        step = int(result.get("epoch", result.get("training_iteration", 1) - 1))
        values = {k: v for k, v in result.items()
                  if k in (*EPOCH_METRICS, "best_valid_wf1", "valid_loss") or k.startswith(DIAGNOSTIC_PREFIX)}
        finite = {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self._write(("result", trial.trial_id, finite, step))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        epochs_run = int(last.get("epoch", -1)) + 1
        if last.get("early_stopped"):
            reason = "patience"  # the trial's own early stopping ended it
        elif epochs_run >= self.max_epochs:
            reason = "completed"
        else:
            reason = "scheduler"  # ASHA stopped it at a rung
        best = last.get("best_valid_wf1")
        best = float(best) if isinstance(best, (int, float)) and math.isfinite(best) else None
        self._write(("complete", trial.trial_id, reason, epochs_run, best))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        self._write(("error", trial.trial_id, trial_error_message(trial), int(last.get("epoch", -1)) + 1))

    # -- writes ----------------------------------------------------------------------------------
    def _write(self, write: tuple) -> None:
        if MLflowTrialCallback.lost is not None:
            self.pending.append(write)
            return
        try:
            getattr(self, f"_apply_{write[0]}")(*write[1:])
        except Exception:
            from dgnode.tracking.server import server_unreachable

            reason = server_unreachable(self.tracking_uri)
            if reason is None:
                raise  # the server answers: a real error, not a lost server
            MLflowTrialCallback.lost = reason
            self.pending.append(write)
            # Tune's SIGINT handler: save the experiment state and stop after this step.
            os.kill(os.getpid(), signal.SIGINT)

    def _apply_start(self, trial_id: str, config: dict[str, Any]) -> None:
        run_id = self.run_ids.get(trial_id) or self._find_run(trial_id)
        if run_id is not None:
            # A trial resumed by Tuner.restore continues its run (epochs before its checkpoint
            # are already logged; re-run epochs repeat their steps with the same values).
            self._client().update_run(run_id, status=RunStatus.RUNNING)
            run = TrackedRun(self.tracking_uri, run_id, self.experiment_id)
        else:
            run = self._new_run(trial_id)
        self.run_ids[trial_id] = run.run_id
        try:
            resolved = self.resolve_config(config)
        except Exception as error:  # noqa: BLE001 - an invalid sampled config fails the trial itself
            run.set_tags({"dgnode.config_error": str(error)})
        else:
            run.log_config(resolved)
        run.log_params({f"search.{k}": v for k, v in config.items()})

    def _apply_result(self, trial_id: str, metrics: dict[str, float], step: int) -> None:
        run_id = self.run_ids.get(trial_id)
        if run_id is not None:
            TrackedRun(self.tracking_uri, run_id, self.experiment_id).log_metrics(metrics, step=step)

    def _apply_complete(self, trial_id: str, reason: str, epochs_run: int, best: float | None) -> None:
        run_id = self.run_ids.get(trial_id)
        if run_id is None:
            return
        run = TrackedRun(self.tracking_uri, run_id, self.experiment_id)
        if best is not None:
            run.log_metrics({"best_valid_wf1": best}, step=max(epochs_run - 1, 0))
        run.set_tags({STOP_REASON_TAG: reason, EPOCHS_TAG: epochs_run})
        run.end(RunStatus.FINISHED)
        self.finished[trial_id] = RunStatus.FINISHED

    def _apply_error(self, trial_id: str, message: str, epochs_run: int) -> None:
        run_id = self.run_ids.get(trial_id) or self._find_run(trial_id)
        run = TrackedRun(self.tracking_uri, run_id, self.experiment_id) if run_id else self._new_run(trial_id)
        self.run_ids[trial_id] = run.run_id
        run.set_tags({ERROR_TAG: message, EPOCHS_TAG: epochs_run})
        run.end(RunStatus.FAILED)
        self.finished[trial_id] = RunStatus.FAILED

    # -- helpers ---------------------------------------------------------------------------------
    def _client(self):
        from mlflow import MlflowClient

        return MlflowClient(self.tracking_uri)

    def _new_run(self, trial_id: str) -> TrackedRun:
        client = self._client()
        tags = {**self.tags, PARENT_TAG: self.parent_run_id, TRIAL_TAG: trial_id, KIND_TAG: "trial"}
        created = client.create_run(self.experiment_id, run_name=f"trial-{trial_id}", tags=tags)
        return TrackedRun(self.tracking_uri, created.info.run_id, self.experiment_id)

    def _find_run(self, trial_id: str) -> str | None:
        client = self._client()
        runs = client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{self.parent_run_id}' and tags.`{TRIAL_TAG}` = '{trial_id}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0].info.run_id if runs else None


def trial_error_message(trial: Any) -> str:
    """The root cause of a failed trial in one line, e.g. ``NFECapExceeded: ...``.

    Tune keeps the error as a pickled exception (a ``RayTaskError`` wrapping the trial's own,
    possibly wrapped again by Ray Train) and as a traceback text, first in the driver's staging
    directory (where it is when ``on_trial_error`` runs) and later in the storage path. The
    innermost cause wins.
    """
    error = _first(lambda: _load_pickle(trial.pickled_error_file), trial.get_pickled_error)
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        inner = getattr(error, "cause", None) or error.__cause__
        if inner is None or inner is error:
            break
        error = inner
    if isinstance(error, BaseException):
        return " ".join(f"{type(error).__name__}: {error}".split())[:5000]
    text = _first(lambda: Path(trial.error_file).read_text() if trial.error_file else None, trial.get_error) or ""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return (lines[-1] if lines else "trial failed (no error recorded)")[:5000]


def _first(*getters: Any) -> Any:
    for getter in getters:
        try:
            value = getter()
        except Exception:  # noqa: BLE001 - missing, unreadable or unpicklable: try the next source
            value = None
        if value:
            return value
    return None


def _load_pickle(path: str | None) -> Any:
    if not path or not Path(path).exists():
        return None
    import cloudpickle

    with open(path, "rb") as handle:
        return cloudpickle.load(handle)
