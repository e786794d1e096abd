"""The one place dgnode starts or joins Ray.

``RAY_ADDRESS`` (set by ``ray job submit`` and on cluster nodes) joins that cluster; otherwise a
private local instance starts (``address="local"``, never ``"auto"``: a stale cluster on the same
machine is not joined by accident). A session started here is shut down when the ``with`` block
ends; one that was already running (a test fixture, a job driver) is left alone.

Who can reach a local instance. Its dashboard and job API listen on 127.0.0.1 only, and token
authentication is on for the servers (Ray 2.60's default for a local instance; dgnode refuses to
start one with ``RAY_AUTH_MODE=disabled``), so a request without the session's token is refused (401; tests/foundation/
test_ray_session.py). Ray 2.60's core gRPC servers (GCS, raylet, workers) and its agents bind all
interfaces whatever ``--node-ip-address`` says (upstream ray-project/ray#59852 moves them to the
node IP in a later release); they too require the token. On a shared network, keep the machine's
firewall closed to Ray's ports or run on a private network.

A driver killed with SIGKILL cannot shut its instance down, and Ray's agents outlive it; a small
watcher (:mod:`dgnode.ray_reaper`) started beside every local instance ends them.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

from dgnode.errors import DgnodeError

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
    options = {"include_dashboard": dashboard, "dashboard_host": "127.0.0.1"} if target == "local" else {}
    if target == "local" and os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        # Ray 2.60 turns token authentication on for a local instance unless told not to.
        raise DgnodeError("RAY_AUTH_MODE=disabled: dgnode does not start a Ray whose job API serves requests "
                          "without the cluster token; unset RAY_AUTH_MODE")
    before = _children() if target == "local" else None
    ray.init(address=target, log_to_driver=False, logging_level="WARNING", **options)
    reaper = _start_reaper(_children() - before) if before is not None else None
    try:
        yield
    finally:
        ray.shutdown()
        if reaper is not None:
            _stop_reaper(reaper)


def _children() -> set[int]:
    import psutil

    return {child.pid for child in psutil.Process().children()}


def _start_reaper(roots: set[int]):
    """The watcher of :mod:`dgnode.ray_reaper` over the processes ``ray.init`` just started."""
    import subprocess
    import sys

    if not roots:
        return None
    # Its own session: a signal to the driver's process group must not reach the watcher.
    return subprocess.Popen([sys.executable, "-m", "dgnode.ray_reaper", *map(str, sorted(roots))],
                            stdin=subprocess.PIPE, start_new_session=True, close_fds=True)


def _stop_reaper(reaper) -> None:
    import subprocess

    try:
        reaper.stdin.write(b"stop\n")
        reaper.stdin.close()
        reaper.wait(timeout=10)
    except (OSError, ValueError):
        pass
    except subprocess.TimeoutExpired:  # a watcher that does not stop must not hang the driver
        reaper.kill()
