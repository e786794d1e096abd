"""Seeds and deterministic kernels: the same config and seed give the same metrics, exactly."""

from __future__ import annotations

import hashlib
import os
import random

import numpy as np
import torch

__all__ = ["derive_seed", "seed_everything"]


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed from ``seed`` and ``keys`` (e.g. ``("shuffle", epoch)``), stable across
    processes and Python versions (unlike ``hash``), so streams for different purposes never
    collide and a resumed run draws what an uninterrupted one would."""
    text = ":".join([str(seed), *map(str, keys)]).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") & ((1 << 63) - 1)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; with ``deterministic`` also select deterministic kernels.

    ``warn_only=True``: an op without a deterministic kernel (some CUDA scatter ops) warns
    instead of failing the run; on CPU every op this package uses is deterministic.
    """
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs a fixed workspace to be deterministic; must be set before the first CUDA matmul.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)
