"""Does a trial fit the Ray cluster: at the start of a search, and while it runs.

At the start (:func:`check_trial_fits`): a trial that fits neither the nodes that are up nor what
the head's autoscaler may launch is refused at once, instead of waiting forever; one the
autoscaler can host waits for it (the cloud cluster starts without GPU workers).

While it runs (:class:`CapacityWatch`): nodes can be lost for good (a fixed cluster, a node type
whose capacity ran out). When trials are pending, none is running, and the cluster as it now is
(plus what its autoscaler may add) cannot host one, nothing will ever run again: after
``stall_timeout_s`` the watch ends the session the way Ctrl-C does (Tune saves the experiment; no MLflow run is
left RUNNING, since the pending trials never started one) and :func:`dgnode.tuning.search.run_search`
raises the reason, with the ``--resume`` command for when the nodes are back.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from ray.tune import Callback

from dgnode.errors import DgnodeError, EnvironmentFault
from dgnode.tuning.settings import TuneSettings

__all__ = ["CapacityLost", "CapacityWatch", "check_trial_fits", "stalled_reason"]


def check_trial_fits(resources: dict[str, float], settings: TuneSettings,
                     launchable: dict[str, tuple[dict[str, float], int]] | None = None) -> str | None:
    """Fail now rather than wait forever: one trial's resources must fit the cluster, as it is
    (``resources``: Ray's total resources) or as its autoscaler may grow it (``launchable``: the
    worker node types it may add, :func:`dgnode.cluster.config.launchable_workers`).

    A trial of W > 1 workers holds a token CPU share for its Tune function besides the W
    workers' own requests (so W workers x 1 CPU do not fit on exactly W CPUs). Returns None when
    the trial fits now, else a line saying that it waits for the autoscaler (each worker fits one
    node type it may launch, and the trial fits the cluster at its largest); raises otherwise.
    """
    workers = settings.workers_per_trial
    cpus = workers * settings.cpus_per_worker + (0.01 if workers > 1 else 0.0)
    gpus = workers * settings.gpus_per_worker
    have_cpus, have_gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    if cpus <= have_cpus + 1e-9 and gpus <= have_gpus + 1e-9:
        return None
    need = (f"one trial needs {cpus:g} CPUs and {gpus:g} GPUs ({workers} worker(s) x {settings.cpus_per_worker:g} CPU, "
            f"{settings.gpus_per_worker:g} GPU{' + 0.01 CPU for the trial driver' if workers > 1 else ''}); the Ray cluster "
            f"has {have_cpus:g} CPUs and {have_gpus:g} GPUs")
    if launchable:
        from dgnode.cluster.config import fits

        worker = {"CPU": settings.cpus_per_worker, "GPU": settings.gpus_per_worker}
        types = [name for name, (offered, most) in launchable.items() if most > 0 and fits(worker, offered)]
        most_cpus = have_cpus + sum(most * offered.get("CPU", 0.0) for offered, most in launchable.values())
        most_gpus = have_gpus + sum(most * offered.get("GPU", 0.0) for offered, most in launchable.values())
        if types and cpus <= most_cpus + 1e-9 and gpus <= most_gpus + 1e-9:
            return f"{need} now: waiting for the autoscaler to add nodes ({', '.join(types)})"
        raise DgnodeError(
            f"{need}, and its autoscaler cannot add enough: "
            + (f"at most {most_cpus:g} CPUs and {most_gpus:g} GPUs in all" if types else
               f"no worker node type it may launch fits one worker ({settings.cpus_per_worker:g} CPU, "
               f"{settings.gpus_per_worker:g} GPU)")
            + ": lower --cpus_per_worker / --gpus_per_worker / --workers_per_trial or raise max_workers")
    raise DgnodeError(f"{need}: lower --cpus_per_worker / --gpus_per_worker / --workers_per_trial or add nodes")


class CapacityLost(EnvironmentFault):
    """The cluster lost the nodes a trial needs; the search is saved and resumable."""


def stalled_reason(statuses: list[str], resources: dict[str, float], settings: TuneSettings,
                   launchable: dict[str, tuple[dict[str, float], int]] | None) -> str | None:
    """Why no trial can ever start again (trials ``PENDING``, none ``RUNNING``, and one trial
    fits neither the cluster's ``resources`` nor what ``launchable`` may add), else None."""
    if "RUNNING" in statuses or "PENDING" not in statuses:
        return None
    try:
        check_trial_fits(resources, settings, launchable)
    except DgnodeError as error:
        return str(error)
    return None


class CapacityWatch(Callback):
    """Ends a session whose pending trials can never start (module docstring).

    The settings and the autoscaler's node types are class attributes that
    :func:`~dgnode.tuning.search.run_search` sets at every start and resume (Tune restores
    callbacks from the saved experiment, never pickling these); :attr:`stalled` carries the
    reason back to it. The cluster is looked at every few seconds (:attr:`interval_s` at most),
    and a stall counts once it has lasted ``settings.stall_timeout_s`` (a node that restarts
    comes back within it; 0 turns the watch off).
    """

    settings: TuneSettings | None = None
    launchable: dict[str, tuple[dict[str, float], int]] | None = None
    stalled: str | None = None
    interval_s = 15.0

    def __init__(self) -> None:
        self._checked = float("-inf")
        self._since: float | None = None

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        settings = CapacityWatch.settings
        if settings is None or not settings.stall_timeout_s:
            return
        if now - self._checked < min(self.interval_s, settings.stall_timeout_s / 4):
            return
        self._checked = now
        import ray

        reason = stalled_reason([t.status for t in trials], ray.cluster_resources(), settings, CapacityWatch.launchable)
        if reason is None:
            self._since = None
        elif self._since is None:
            self._since = now
        elif now - self._since >= settings.stall_timeout_s:
            CapacityWatch.stalled, CapacityWatch.settings = reason, None
            # Tune's SIGINT handler: save the experiment state and stop after this step.
            os.kill(os.getpid(), signal.SIGINT)
