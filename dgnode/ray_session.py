"""The one place dgnode starts or joins Ray.

``RAY_ADDRESS`` (set by ``ray job submit`` and on cluster nodes) joins that cluster; otherwise a
private local instance starts (``address="local"``, never ``"auto"``: a stale cluster on the same
machine is not joined by accident). A session started here is shut down when the ``with`` block
ends; one that was already running (a test fixture, a job driver) is left alone.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

__all__ = ["ray_session"]


@contextlib.contextmanager
def ray_session(address: str | None = None, dashboard: bool = False) -> Iterator[None]:
    """Be connected to Ray inside the block. ``address`` beats ``RAY_ADDRESS``; ``dashboard``
    starts the dashboard with a local instance (Ray Train's resource clean-up of stopped
    multi-worker trials goes through the state API it serves)."""
    import ray

    if ray.is_initialized():
        yield
        return
    target = address or os.environ.get("RAY_ADDRESS") or "local"
    options = {"include_dashboard": dashboard} if target == "local" else {}
    ray.init(address=target, log_to_driver=False, logging_level="WARNING", **options)
    try:
        yield
    finally:
        ray.shutdown()
