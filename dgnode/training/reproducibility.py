"""Seeds and deterministic kernels: the same config and seed give the same metrics, exactly."""

from __future__ import annotations

import hashlib
import os
import random
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch

from dgnode.errors import DgnodeError

__all__ = ["NondeterministicOp", "derive_seed", "explain_nondeterminism", "seed_everything"]


class NondeterministicOp(DgnodeError):
    """``train.deterministic`` is on and the model ran an op that has no deterministic kernel."""


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed from ``seed`` and ``keys`` (e.g. ``("shuffle", epoch)``), stable across
    processes and Python versions (unlike ``hash``), so streams for different purposes never
    collide and a resumed run draws what an uninterrupted one would."""
    text = ":".join([str(seed), *map(str, keys)]).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") & ((1 << 63) - 1)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; with ``deterministic`` also select deterministic kernels.

    Strictly: an op without a deterministic kernel (some CUDA scatter ops, e.g. in PyG's
    message passing) raises (:func:`explain_nondeterminism` says what to do) instead of warning
    and silently breaking the promise that the same seed gives the same metrics. On CPU every op
    this package uses is deterministic.
    """
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs a fixed workspace to be deterministic; must be set before the first CUDA matmul.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)


@contextmanager
def explain_nondeterminism() -> Iterator[None]:
    """Turn torch's error for an op without a deterministic kernel into one that names the option."""
    try:
        yield
    except RuntimeError as error:
        if "does not have a deterministic implementation" not in str(error):
            raise
        raise NondeterministicOp(f"{str(error).splitlines()[0]} -- train.deterministic is on: set "
                                 "train.deterministic false to run this model on this device") from error
