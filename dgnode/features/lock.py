"""One writer at a time in a feature store: a lock created only if absent, on a disk or in S3.

``STORE/.writer.lock`` (a dot-name, so never taken for a part) holds JSON ``{"token", "pid",
"host", "node", "started", "since"}``. Creating it succeeds for exactly one writer: locally
``open(O_CREAT | O_EXCL)``, on S3 a PUT with ``If-None-Match: *``
(:func:`dgnode.storage.create_exclusive`). The others poll until it is released, or until it is
judged stale:

* held on this host (same host name, boot and process namespace: containers sharing a disk and
  a host name do not see each other's processes) by a process that is gone, or by another
  process than the one that took it
  (same pid, other start time: the pid was reused), or left by this very process (a release
  that could not remove it, e.g. the store had turned read-only);
* held on another host for longer than ``lease`` seconds: a writer holds the lock only while it
  commits one batch (well under a second), so a lock that old was left by a writer that died.
  Another host's pids mean nothing here, so this is the only rule for a writer on another node
  of a cluster sharing an ``s3://`` store. The age is the lock file's mtime by this host's
  clock, or, on S3, the object's ``Last-Modified`` by the server's clock (machines' clocks need
  not agree);
* empty or unreadable and older than :data:`GRACE` seconds (its writer died between creating
  and filling it; an S3 lock object is created with its content, never empty).

A stale lock is broken so that a lock re-taken meanwhile by a live writer survives: locally by
renaming it aside, checking that the renamed file is the one judged stale and putting back one
that is not; on S3 by a DELETE with ``If-Match`` the version judged stale
(:func:`dgnode.storage.delete_if_unchanged`). A writer that held its lock past half the lease
checks that it still holds it before committing (:meth:`StoreLock.check_held`): a commit never
starts under a lock another writer may have broken.
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

from dgnode.errors import DgnodeError, EnvironmentFault
from dgnode.storage import Location, create_exclusive, delete_if_unchanged, read_versioned, resolve
from dgnode.storage.exclusive import Versioned

__all__ = ["GRACE", "LEASE", "LOCK_FILE", "StoreLock"]

LOCK_FILE = ".writer.lock"
GRACE = 30.0
LEASE = 600.0
# Tokens of the locks this process holds now: a lock of this pid with another token is stale.
_HELD: set[str] = set()


class StoreLock:
    """The writer lock of one store; re-entrant within a process (``with lock: with lock: ...``).

    Creating the lock can fail like any write (read-only store, full disk: an :class:`OSError`;
    an S3 failure: one :class:`~dgnode.errors.DgnodeError` naming it) and that propagates for the
    store to report. Waiting longer than ``timeout`` seconds for another writer is an
    :class:`EnvironmentFault` naming the holder.
    """

    def __init__(self, root: str | Path | Location, timeout: float = 300.0, lease: float = LEASE) -> None:
        self.location = resolve(root) / LOCK_FILE
        self.timeout = timeout
        self.lease = lease
        self._depth = 0
        self._token: str | None = None
        self._since = 0.0  # time.monotonic() just before the create that took the lock

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
        while True:
            attempt = time.monotonic()
            if self._create(token):
                break
            found = read_versioned(self.location)
            if found is None:
                continue  # released between our attempt and the read
            if self._stale(found.data, found.age_s):
                self._break(found)
                continue
            if time.monotonic() > deadline:
                holder = _parse(found.data) or {}
                kind = "lock object" if self.location.is_remote else "lock file"
                raise EnvironmentFault(
                    f"the feature store is being written by pid {holder.get('pid', '?')} on "
                    f"{holder.get('host', '?')} (lock taken {holder.get('since', '?')}); waited "
                    f"{self.timeout:.0f} s. If no dgnode process writes to this store, remove the {kind}",
                    path=str(self.location),
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        self._token, self._depth, self._since = token, 1, attempt
        _HELD.add(token)

    def check_held(self) -> None:
        """Before a commit: an :class:`EnvironmentFault` if this writer's lock is no longer its own
        (held past the lease, another writer judged it stale and took over). Free while the lock
        is younger than half the lease: nobody can have judged it stale yet."""
        if not self._depth:
            raise RuntimeError("check of a store lock that is not held")
        if time.monotonic() - self._since < self.lease / 2:
            return
        found = read_versioned(self.location)
        if found is None or (_parse(found.data) or {}).get("token") != self._token:
            raise EnvironmentFault(
                f"this writer held the store's lock for over {self.lease / 2:.0f} s and lost it to another writer "
                "(the lease is meant for writers that died): this batch was not stored; run the same command again",
                path=str(self.location))

    def release(self) -> None:
        if not self._depth:
            raise RuntimeError("release of a store lock that is not held")
        self._depth -= 1
        if self._depth:
            return
        token, self._token = self._token, None
        _HELD.discard(token)
        try:
            found = read_versioned(self.location)
            if found is not None and (_parse(found.data) or {}).get("token") == token:
                if self.location.is_remote:
                    delete_if_unchanged(self.location, found.version)
                else:
                    os.unlink(self.location.local_path())
        except (OSError, DgnodeError):
            pass  # left behind (read-only store, S3 unreachable): stale once judged by the rules above

    # -- internals -----------------------------------------------------------------------------
    def _create(self, token: str) -> bool:
        holder = {"token": token, "pid": os.getpid(), "host": socket.gethostname(), "node": _node(),
                  "started": _start_time(os.getpid()), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        if self.location.is_remote:
            return create_exclusive(self.location, json.dumps(holder).encode())
        path = self.location.local_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(descriptor, json.dumps(holder).encode())
        except OSError:
            os.close(descriptor)
            os.unlink(path)
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

    def _break(self, found: Versioned) -> None:
        if self.location.is_remote:
            delete_if_unchanged(self.location, found.version)  # False: re-taken meanwhile, kept
            return
        path = self.location.local_path()
        aside = path.with_name(f"{path.name}.stale-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return
        if _read_file(aside) != found.data:
            # A live writer re-took the lock between our read and the rename: give it back.
            try:
                os.link(aside, path)
            except FileExistsError:
                pass
            except OSError:  # no hard links here: a plain rename back, unless the lock is taken again
                if not path.exists():
                    os.replace(aside, path)
                    return
        os.unlink(aside)


def _read_file(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


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
