"""One writer at a time in a feature store: a lock file created with ``O_CREAT | O_EXCL``.

``STORE/.writer.lock`` (a dot-name, so never taken for a part) holds JSON ``{"token", "pid",
"host", "node", "started", "since"}``. Creating it with ``O_EXCL`` succeeds for exactly one process; the
others poll until it is released, or until it is judged stale:

* held on this host (same host name, boot and process namespace: containers sharing a disk and
  a host name do not see each other's processes) by a process that is gone, or by another
  process than the one that took it
  (same pid, other start time: the pid was reused), or left by this very process (a release
  that could not remove it, e.g. the store had turned read-only);
* held on another host for longer than ``lease`` seconds: a writer holds the lock only while it
  commits one batch (well under a second), so a lock that old was left by a writer that died;
* empty or unreadable and older than :data:`GRACE` seconds (its writer died between creating
  and filling it).

A stale lock is broken by renaming it aside and checking that the renamed file is the one
judged stale; a lock re-taken meanwhile by a live writer is put back. The same protocol maps
onto object storage: a conditional put (``If-None-Match: *``) is the exclusive create and the
lease the staleness rule.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from dgnode.errors import EnvironmentFault

__all__ = ["GRACE", "LEASE", "LOCK_FILE", "StoreLock"]

LOCK_FILE = ".writer.lock"
GRACE = 30.0
LEASE = 600.0
# Tokens of the locks this process holds now: a lock of this pid with another token is stale.
_HELD: set[str] = set()


class StoreLock:
    """The writer lock of one store; re-entrant within a process (``with lock: with lock: ...``).

    Creating the lock file can fail like any write (read-only store, full disk): that
    :class:`OSError` propagates for the store to report. Waiting longer than ``timeout``
    seconds for another writer is an :class:`EnvironmentFault` naming the holder.
    """

    def __init__(self, root: str | Path, timeout: float = 300.0, lease: float = LEASE) -> None:
        self.path = Path(root) / LOCK_FILE
        self.timeout = timeout
        self.lease = lease
        self._depth = 0
        self._token: str | None = None

    def __enter__(self) -> "StoreLock":
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    @property
    def held(self) -> bool:
        return self._depth > 0

    def acquire(self) -> None:
        if self._depth:
            self._depth += 1
            return
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self.timeout
        delay = 0.02
        while not self._create(token):
            raw, age = _read(self.path)
            if raw is None:
                continue  # released between our attempt and the read
            if self._stale(raw, age):
                self._break(raw)
                continue
            if time.monotonic() > deadline:
                holder = _parse(raw) or {}
                raise EnvironmentFault(
                    f"the feature store is being written by pid {holder.get('pid', '?')} on "
                    f"{holder.get('host', '?')} (lock taken {holder.get('since', '?')}); waited "
                    f"{self.timeout:.0f} s. If no dgnode process writes to this store, remove the lock file",
                    path=str(self.path),
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        self._token, self._depth = token, 1
        _HELD.add(token)

    def release(self) -> None:
        if not self._depth:
            raise RuntimeError("release of a store lock that is not held")
        self._depth -= 1
        if self._depth:
            return
        token, self._token = self._token, None
        _HELD.discard(token)
        try:
            raw, _ = _read(self.path)
            if raw is not None and (_parse(raw) or {}).get("token") == token:
                os.unlink(self.path)
        except OSError:
            pass  # left behind (e.g. the store turned read-only): stale once judged by the rules above

    # -- internals -----------------------------------------------------------------------------
    def _create(self, token: str) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        holder = {"token": token, "pid": os.getpid(), "host": socket.gethostname(), "node": _node(),
                  "started": _start_time(os.getpid()), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        try:
            os.write(descriptor, json.dumps(holder).encode())
        except OSError:
            os.close(descriptor)
            os.unlink(self.path)
            raise
        os.close(descriptor)
        return True

    def _stale(self, raw: bytes, age: float) -> bool:
        holder = _parse(raw)
        if holder is None:
            return age > GRACE
        if holder.get("host") != socket.gethostname() or holder.get("node", _node()) != _node():
            return age > self.lease
        pid = holder.get("pid")
        if pid == os.getpid():
            return holder.get("token") not in _HELD
        started = _start_time(pid) if isinstance(pid, int) else None
        return started is None or abs(started - float(holder.get("started") or 0.0)) > 1.0

    def _break(self, raw: bytes) -> None:
        aside = self.path.with_name(f"{self.path.name}.stale-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        taken, _ = _read(aside)
        if taken != raw:
            # A live writer re-took the lock between our read and the rename: give it back.
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
            except OSError:  # no hard links here: a plain rename back, unless the lock is taken again
                if not self.path.exists():
                    os.replace(aside, self.path)
                    return
        os.unlink(aside)


def _read(path: Path) -> tuple[bytes | None, float]:
    """The lock's bytes and age in seconds; ``None`` when there is no lock file."""
    try:
        with open(path, "rb") as handle:
            return handle.read(), time.time() - os.fstat(handle.fileno()).st_mtime
    except FileNotFoundError:
        return None, 0.0


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        holder = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return holder if isinstance(holder, dict) else None


@functools.lru_cache(maxsize=1)
def _node() -> str:
    """This kernel boot and process namespace: where a pid means the same process."""
    parts = []
    for source in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        try:
            parts.append(os.readlink(source) if source.endswith("/pid") else Path(source).read_text().strip())
        except OSError:
            parts.append("?")
    return "/".join(parts)


def _start_time(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch); ``None`` when there is none."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:  # killed, not yet reaped: it holds nothing
            return None
        return process.create_time()
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        return float("nan")  # alive, start time hidden: never judged stale
