"""``check_trial_fits``: a search that cannot ever start a trial fails at once; one that waits for
the autoscaler says so (the cloud cluster starts without GPU workers). ``CapacityWatch``: a search
whose pending trials can never start once nodes are lost ends its session, resumably."""

from __future__ import annotations

import pickle
import signal

import pytest

from dgnode.errors import DgnodeError
from dgnode.tuning.settings import TuneSettings
from dgnode.tuning.capacity import CapacityWatch, check_trial_fits, stalled_reason

GPU_WORKERS = {"gpu_a10g": ({"CPU": 4, "GPU": 1, "accelerator_type:A10G": 1}, 4), "cpu_big": ({"CPU": 16}, 2)}
HEAD_ONLY = {"CPU": 4.0}  # the cloud head: CPUs for drivers, no GPU


def test_a_trial_that_fits_the_cluster_now_needs_nothing() -> None:
    assert check_trial_fits({"CPU": 2.0}, TuneSettings(cpus_per_worker=2)) is None
    assert check_trial_fits({"CPU": 8.0, "GPU": 2.0}, TuneSettings(workers_per_trial=2, gpus_per_worker=1), GPU_WORKERS) is None


def test_a_fixed_cluster_too_small_for_one_trial_is_refused() -> None:
    with pytest.raises(DgnodeError, match=r"one trial needs 1 CPUs and 1 GPUs .* the Ray cluster has 4 CPUs and 0 GPUs: "
                                          r"lower --cpus_per_worker"):
        check_trial_fits(HEAD_ONLY, TuneSettings(gpus_per_worker=1))
    # Two workers of 1 CPU need a token share more than 2 CPUs for the trial's driver.
    with pytest.raises(DgnodeError, match=r"needs 2.01 CPUs"):
        check_trial_fits({"CPU": 2.0}, TuneSettings(workers_per_trial=2))


def test_a_trial_the_autoscaler_can_host_waits_for_it() -> None:
    waiting = check_trial_fits(HEAD_ONLY, TuneSettings(gpus_per_worker=1), GPU_WORKERS)
    assert waiting == ("one trial needs 1 CPUs and 1 GPUs (1 worker(s) x 1 CPU, 1 GPU); the Ray cluster has 4 CPUs and "
                       "0 GPUs now: waiting for the autoscaler to add nodes (gpu_a10g)")
    # Four one-GPU workers spread over four GPU nodes.
    assert "waiting for the autoscaler" in check_trial_fits(HEAD_ONLY, TuneSettings(workers_per_trial=4, gpus_per_worker=1),
                                                            GPU_WORKERS)


def test_a_trial_the_autoscaler_cannot_host_is_refused() -> None:
    with pytest.raises(DgnodeError, match=r"no worker node type it may launch fits one worker \(1 CPU, 2 GPU\)"):
        check_trial_fits(HEAD_ONLY, TuneSettings(gpus_per_worker=2), GPU_WORKERS)
    with pytest.raises(DgnodeError, match=r"cannot add enough: at most 52 CPUs and 4 GPUs in all"):
        check_trial_fits(HEAD_ONLY, TuneSettings(workers_per_trial=5, gpus_per_worker=1), GPU_WORKERS)
    stopped = {"gpu_a10g": (GPU_WORKERS["gpu_a10g"][0], 0)}  # max_workers 0: never launched
    with pytest.raises(DgnodeError, match="no worker node type it may launch"):
        check_trial_fits(HEAD_ONLY, TuneSettings(gpus_per_worker=1), stopped)


class _Trial:
    def __init__(self, status: str) -> None:
        self.status = status


def test_stalled_only_when_trials_wait_that_nothing_can_ever_run() -> None:
    one_gpu = TuneSettings(gpus_per_worker=1)
    assert stalled_reason(["PENDING", "TERMINATED"], HEAD_ONLY, one_gpu, None).startswith("one trial needs 1 CPUs and 1 GPUs")
    assert stalled_reason(["PENDING", "RUNNING"], HEAD_ONLY, one_gpu, None) is None  # something still runs
    assert stalled_reason(["TERMINATED", "ERROR"], HEAD_ONLY, one_gpu, None) is None  # nothing waits
    assert stalled_reason(["PENDING"], {"CPU": 4.0, "GPU": 1.0}, one_gpu, None) is None  # it fits: it waits its turn
    assert stalled_reason(["PENDING"], HEAD_ONLY, one_gpu, GPU_WORKERS) is None  # the autoscaler may add a node


def test_the_watch_ends_the_session_once_a_stall_outlasts_the_grace(monkeypatch) -> None:
    import ray

    from dgnode.tuning import capacity

    clock = [0.0]
    kills = []
    resources = [{"CPU": 4.0, "GPU": 1.0}]
    monkeypatch.setattr(capacity.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(capacity.os, "kill", lambda pid, sig: kills.append(sig))
    monkeypatch.setattr(ray, "cluster_resources", lambda: resources[0])
    monkeypatch.setattr(CapacityWatch, "settings", TuneSettings(gpus_per_worker=1, stall_timeout_s=120))
    monkeypatch.setattr(CapacityWatch, "launchable", None)
    monkeypatch.setattr(CapacityWatch, "stalled", None)
    watch = pickle.loads(pickle.dumps(CapacityWatch()))  # as Tune restores it on resume
    pending = [_Trial("TERMINATED"), _Trial("PENDING")]

    def step(at: float) -> None:
        clock[0] = at
        watch.on_step_end(iteration=0, trials=pending)

    step(0)
    resources[0] = HEAD_ONLY  # the GPU node is lost
    step(5)  # within the check interval: not looked at
    step(20)  # the stall starts
    step(20 + 120 - 1)
    assert not kills and CapacityWatch.stalled is None
    resources[0] = {"CPU": 4.0, "GPU": 1.0}  # the node comes back: the stall is forgotten
    step(20 + 120 + 20)
    resources[0] = HEAD_ONLY
    step(200)
    step(200 + 120 - 1)
    assert not kills
    step(200 + 120 + 15)
    assert kills == [signal.SIGINT]
    assert CapacityWatch.stalled.startswith("one trial needs 1 CPUs and 1 GPUs") and CapacityWatch.settings is None
    step(1000)  # inert once it has fired
    assert len(kills) == 1


def test_a_zero_stall_timeout_turns_the_watch_off(monkeypatch) -> None:
    import ray

    from dgnode.tuning import capacity

    monkeypatch.setattr(ray, "cluster_resources", lambda: pytest.fail("the watch looked at the cluster"))
    monkeypatch.setattr(CapacityWatch, "settings", TuneSettings(gpus_per_worker=1, stall_timeout_s=0))
    watch = CapacityWatch()
    for at in (0.0, 1e6):
        monkeypatch.setattr(capacity.time, "monotonic", lambda: at)
        watch.on_step_end(iteration=0, trials=[_Trial("PENDING")])
    with pytest.raises(ValueError, match="stall_timeout_s must be >= 0"):
        TuneSettings(stall_timeout_s=-1)
