"""``check_trial_fits``: a search that cannot ever start a trial fails at once; one that waits for
the autoscaler says so (the cloud cluster starts without GPU workers)."""

from __future__ import annotations

import pytest

from dgnode.errors import DgnodeError
from dgnode.tuning.settings import TuneSettings
from dgnode.tuning.tuner import check_trial_fits

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
