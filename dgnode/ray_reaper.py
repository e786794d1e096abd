"""Stops what a local Ray left behind when the dgnode process that started it is killed.

``ray.shutdown()`` stops a local instance when a driver ends normally. A driver killed with
SIGKILL cannot: its GCS and raylet notice and exit, but the raylet's agents (dashboard agent,
runtime-env agent, which rename themselves ``ray::...``) went on listening for over a minute,
measured on Ray 2.60. :func:`dgnode.ray_session.ray_session` therefore starts this watcher next
to every local instance it starts:

    python -m dgnode.ray_reaper ROOT_PID [ROOT_PID ...]

It reads its stdin, a pipe whose write end only the driver holds. ``stop`` on it means the
driver shut Ray down itself: the watcher exits. End of file without ``stop`` means the driver
died: the watcher ends every process it saw descend from the roots (Ray's own processes, by PID
and start time, so a reused PID is never hit): SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import select
import sys
import time

__all__ = ["GRACE_S", "main"]

GRACE_S = 3.0
_POLL_S = 1.0


def _family(roots: list[int], seen: dict[int, float]) -> None:
    """Add the roots and all their descendants, with start times, to ``seen``."""
    import psutil

    for pid in roots:
        try:
            root = psutil.Process(pid)
            members = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for process in members:
            try:
                seen.setdefault(process.pid, process.create_time())
            except psutil.Error:
                continue


def _reap(seen: dict[int, float]) -> None:
    import psutil

    alive = []
    for pid, started in seen.items():
        try:
            process = psutil.Process(pid)
            if process.create_time() == started:
                process.terminate()
                alive.append(process)
        except psutil.Error:
            continue
    _, left = psutil.wait_procs(alive, timeout=GRACE_S)
    for process in left:
        try:
            process.kill()
        except psutil.Error:
            continue


def main(argv: list[str] | None = None) -> int:
    roots = [int(pid) for pid in (argv if argv is not None else sys.argv[1:])]
    seen: dict[int, float] = {}
    stream = sys.stdin.buffer
    while True:
        _family(roots, seen)
        ready, _, _ = select.select([stream], [], [], _POLL_S)
        if not ready:
            continue
        line = stream.readline()
        if line.strip() == b"stop":
            return 0
        if not line:  # end of file: the driver is gone without saying stop
            time.sleep(0.2)
            _family(roots, seen)
            _reap(seen)
            return 0


if __name__ == "__main__":
    sys.exit(main())
