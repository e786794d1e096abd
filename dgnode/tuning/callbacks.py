"""Tune callbacks of a search that run on the driver: bounded sessions and a progress bar.

Both are pickled with the experiment state (Tune restores callbacks from it and takes no new ones
on resume), so neither keeps anything unpicklable.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray.tune import Callback

if TYPE_CHECKING:
    from dgnode.storage import Location

__all__ = ["SessionStop", "TrialLedger", "TrialProgress", "read_ledger"]


class SessionStop(Callback):
    """Ends this driver session the way Ctrl-C does once :attr:`limit` trials have finished in
    it (``dgnode tune --stop-after N``): Tune saves the experiment and returns, and the search
    stays resumable with ``--resume``. Useful to run a long search in bounded sessions (a
    preemptible head node, a nightly window).

    Every search carries one (inert while :attr:`limit` is ``None``), so a restored search has it
    too: Tune restores callbacks from the saved experiment and takes no new ones. The limit is a
    class attribute that :func:`run_search` sets at every start and resume, never saved.
    """

    limit: int | None = None

    def __init__(self) -> None:
        self.finished = 0

    def __getstate__(self) -> dict:
        return {"finished": 0}

    def _count(self) -> None:
        self.finished += 1
        if SessionStop.limit is not None and self.finished >= SessionStop.limit:
            SessionStop.limit = None
            # Tune's SIGINT handler: save the experiment state and stop after this step.
            os.kill(os.getpid(), signal.SIGINT)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._count()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._count()


class TrialProgress(Callback):
    """A progress bar of finished trials on the driver (a Tune callback; the bar itself is not pickled
    with the experiment state)."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total, self.enabled, self.bar = total, enabled, None

    def __getstate__(self) -> dict:
        return {"total": self.total, "enabled": self.enabled, "bar": None}

    def _tick(self, trials: list) -> None:
        if not self.enabled:
            return
        from dgnode.reporting.progress import progress_bar

        if self.bar is None:
            self.bar = progress_bar(total=self.total, desc="trials", unit="trial")
        done = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
        self.bar.update(done - self.bar.n)
        self.bar.set_postfix(failed=sum(t.status == "ERROR" for t in trials))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._tick(trials)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._tick(trials)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class TrialLedger(Callback):
    """Which trials have ended, written to a JSON file the moment each one ends.

    Tune's own record cannot tell: its experiment snapshot is taken every few seconds, a SIGKILL
    loses what happened since, and after an interrupt a trial stopped by ASHA and one cut short by
    the interrupt look alike (TERMINATED, ``done`` false). A trial ends exactly once from the
    driver's point of view (``on_trial_complete``: returned, early-stopped or stopped by the
    scheduler; ``on_trial_error``: failed), and this callback writes that down atomically before
    Tune moves on, so a resumed search counts finished trials from here and never loses or
    double-counts one. The path (a local file or an ``s3://`` URI) is a class attribute that :func:`dgnode.tuning.search.run_search`
    sets at every start and resume (callbacks come back from the saved experiment).
    """

    path: str | None = None

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._record(trial.trial_id, "TERMINATED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._record(trial.trial_id, "ERROR")

    def _record(self, trial_id: str, status: str) -> None:
        if TrialLedger.path is None:
            return
        from dgnode.storage import resolve

        ledger = read_ledger(TrialLedger.path)
        ledger[trial_id] = status
        # One writer (the driver), whole-file atomic writes: on S3 a PUT of the whole object.
        resolve(TrialLedger.path).write_json(ledger)


def read_ledger(path: "str | Path | Location") -> dict[str, str]:
    """``{trial_id: "TERMINATED" | "ERROR"}`` of the trials that have ended (empty when none);
    ``path`` is a local file or an ``s3://`` URI."""
    from dgnode.storage import resolve

    try:
        return dict(resolve(path).read_json())
    except FileNotFoundError:
        return {}
