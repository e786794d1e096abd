"""The knobs of a search, declared once: ``dgnode tune`` flags, the search record, the pipeline."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TuneSettings"]


@dataclass
class TuneSettings:
    """Knobs of a search.

    Attributes:
        trials: number of sampled configurations
        workers_per_trial: 1: the trial trains in its Tune actor; > 1: a Ray Train run (DDP) per trial
        gpus_per_worker: GPUs of each training worker (0: CPU)
        cpus_per_worker: CPUs of each training worker
        max_concurrent: trials running at once (TPE learns from finished ones: fewer search better, slower)
        epochs: epochs per trial, ASHA's max_t (null: train.epochs of the config)
        grace_period: ASHA: epochs before a trial can be stopped (bench/bench_asha.py: 1 cut the best configurations)
        reduction_factor: ASHA: halving rate
        max_failures: restarts of a failed trial (and of a multi-worker trial's worker group) from its last checkpoint, e.g. after a lost node; a deterministic failure (NFE cap, divergence) is retried too; -1: unlimited
        seed: seed of the TPE sampler (same seed and finished-trial order, same proposals)
        experiment: MLflow experiment, and the registered model's name unless registered_model is set
        registered_model: registered model name (null: the experiment name)
        stall_timeout_s: seconds trials may wait while no node, up or launchable by the autoscaler, can host one (nodes lost for good) before the search saves itself and stops, resumable with --resume; 0: wait forever
    """

    trials: int = 20
    workers_per_trial: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    max_concurrent: int = 2
    epochs: int | None = None
    grace_period: int = 4
    reduction_factor: float = 2.0
    max_failures: int = 0
    seed: int = 0
    experiment: str = "dgnode-tune"
    registered_model: str | None = None
    stall_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        problems = []
        if self.trials < 1:
            problems.append(f"trials must be >= 1, got {self.trials}")
        if self.workers_per_trial < 1:
            problems.append(f"workers_per_trial must be >= 1, got {self.workers_per_trial}")
        if self.gpus_per_worker < 0 or self.cpus_per_worker <= 0:
            problems.append(f"gpus_per_worker must be >= 0 and cpus_per_worker > 0, got {self.gpus_per_worker}, {self.cpus_per_worker}")
        if self.max_concurrent < 1:
            problems.append(f"max_concurrent must be >= 1, got {self.max_concurrent}")
        if self.epochs is not None and self.epochs < 1:
            problems.append(f"epochs must be >= 1, got {self.epochs}")
        if self.grace_period < 1 or self.reduction_factor <= 1:
            problems.append(f"grace_period must be >= 1 and reduction_factor > 1, got {self.grace_period}, {self.reduction_factor}")
        if self.max_failures < -1:
            problems.append(f"max_failures must be >= -1 (-1: unlimited), got {self.max_failures}")
        if self.stall_timeout_s < 0:
            problems.append(f"stall_timeout_s must be >= 0 (0: wait forever), got {self.stall_timeout_s}")
        if problems:
            raise ValueError("invalid search settings: " + "; ".join(problems))
