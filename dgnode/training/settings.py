"""How a Ray Train run is laid out, declared once: workers, resources, where checkpoints go."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DistributedSettings"]


@dataclass
class DistributedSettings:
    """How many workers and where Ray Train keeps checkpoints.

    Attributes:
        num_workers: DDP workers (one process each).
        gpus_per_worker: GPUs per worker; 0 trains on CPU with gloo, > 0 on CUDA with NCCL.
        cpus_per_worker: CPUs reserved per worker (also its torch thread count).
        storage_path: directory or s3://bucket/prefix for checkpoints and results; on more than one node an s3:// URI (every node must reach it)
        name: run name under ``storage_path``; the same name resumes from its last checkpoint.
        max_failures: worker-group restarts from the last checkpoint before the run fails (a lost node counts as one; -1: unlimited)
    """

    num_workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    storage_path: str = "ray_results"
    name: str = "dgnode-train"
    max_failures: int = 0

    def __post_init__(self) -> None:
        if self.num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {self.num_workers}")
        if self.gpus_per_worker < 0 or self.cpus_per_worker <= 0:
            raise ValueError(f"gpus_per_worker must be >= 0 and cpus_per_worker > 0, got {self.gpus_per_worker}, {self.cpus_per_worker}")
        if self.max_failures < -1:
            raise ValueError(f"max_failures must be >= -1 (-1: unlimited), got {self.max_failures}")
