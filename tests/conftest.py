"""Shared fixtures. Stage-specific fixtures live in tests/<stage>/conftest.py.

Servers and clusters started here are stopped in teardown, also when a test fails, and only the
processes these fixtures started are ended (by PID).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

# Keep BLAS/torch thread pools small: CI has 2 cores and Ray workers run beside the test process.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def iemocap_structure_path() -> Path:
    return REPO_ROOT / "dgnode" / "data" / "iemocap_structure.json"


@pytest.fixture(scope="session")
def meld_structure_path() -> Path:
    return REPO_ROOT / "dgnode" / "data" / "meld_structure.json"


@pytest.fixture(scope="session")
def ray_local(tmp_path_factory):
    """One in-process local Ray for the whole session (starting Ray costs ~10 s on 2 cores)."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=4,
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=512 * 1024**2,
            _temp_dir=str(tmp_path_factory.mktemp("ray")),
        )
    yield ray
    ray.shutdown()
