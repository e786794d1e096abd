"""Media of a corpus in object storage, fetched once per node into a bounded local cache.

Decoders (decord, soundfile) want a local file they can seek in, and a dialogue's AVI is read for
every utterance of the dialogue. So the first decode task on a node that needs an object
downloads it whole into the node's cache folder, and every later use on that node (the next
utterances, other tasks, other actors) reads that copy: a node fetches only the media of the
dialogues it decodes, each once. A local path is used where it is: nothing is copied.

Several worker processes share a node's cache folder:

* **one download per object per node**: each object has a lock file (``locks/<key>``); the
  downloader holds it exclusively (``fcntl.flock``: the kernel releases it when a process dies,
  so a crashed download never blocks the others), the others wait for it and then find the file;
* **atomic**: the download is written under a temporary name in the cache folder and renamed
  into place once complete (:meth:`dgnode.storage.Location.download`): no reader ever opens
  half a file;
* **bounded**: after each download, the least recently used files (modification time, refreshed
  on each use) are deleted until the cache holds at most ``max_bytes``. A reader holds the
  object's lock shared while it uses the file and eviction only takes locks it gets without
  waiting, so a file in use is never deleted: the bound can be exceeded only by files in use at
  that moment, and the first release after that evicts again (a marker file says the cache is
  over its bound). Temporaries of a killed download are removed by the next eviction.

The cache is keyed by URI: a raw release does not change; if objects are replaced under the same
keys, delete the folder. It must be on a local disk (``flock`` is not reliable over NFS). Lock
files (empty) are kept, one per object ever fetched: deleting one while another process waits
on it would let two processes download the same object.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from dgnode.media.config import MediaCacheConfig

__all__ = ["FetchStats", "MediaCache", "default_cache_dir", "is_remote"]

_LOCKS = "locks"
_OVER_MARKER = "locks/.over-bound"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class FetchStats:
    """What a cache did for its caller: objects downloaded, their bytes, uses served from the cache."""

    files: int = 0
    bytes: int = 0
    hits: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def minus(self, earlier: "FetchStats") -> "FetchStats":
        return FetchStats(self.files - earlier.files, self.bytes - earlier.bytes, self.hits - earlier.hits)


def is_remote(where: str) -> bool:
    """Whether a manifest media path names an object (``s3://``) rather than a local file."""
    return str(where).startswith("s3://")


def default_cache_dir() -> Path:
    """The per-user cache folder in the system temp folder (on each node's own disk)."""
    return Path(tempfile.gettempdir()) / f"dgnode-media-{os.getuid()}"


class MediaCache:
    """The node's media cache; see the module docstring. ``stats`` counts this instance's work."""

    def __init__(self, config: MediaCacheConfig | None = None) -> None:
        config = config or MediaCacheConfig()
        self.directory = Path(config.dir) if config.dir else default_cache_dir()
        self.max_bytes = config.max_bytes
        self.stats = FetchStats()

    @contextlib.contextmanager
    def local(self, where: str) -> Iterator[str]:
        """A local file holding ``where`` (a local path or an ``s3://`` URI) while the block runs;
        :class:`FileNotFoundError` naming ``where`` when there is no such file or object."""
        where = str(where)
        if not is_remote(where):
            if not os.path.isfile(where):
                raise FileNotFoundError(f"no such file: {where}")
            yield where
            return
        from dgnode.storage import resolve

        location = resolve(where)
        key = hashlib.sha256(location.uri.encode()).hexdigest()[:32]
        path = self.directory / f"{key}-{_UNSAFE.sub('_', location.name)[-80:]}"
        with self._lock(key) as lock:
            fcntl.flock(lock, fcntl.LOCK_SH)
            fetched = False
            while not path.exists():
                # Shared -> exclusive (flock drops the shared lock first, so two converting
                # readers cannot deadlock); whoever gets it first downloads, the rest find the file.
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not path.exists():
                    try:
                        location.download(path)
                    except FileNotFoundError:
                        raise FileNotFoundError(f"no such object: {where}") from None
                    self.stats.files += 1
                    self.stats.bytes += path.stat().st_size
                    fetched = True
                # Back to shared; an eviction in between is seen by the loop test.
                fcntl.flock(lock, fcntl.LOCK_SH)
            if fetched:
                self.evict()
            else:
                self.stats.hits += 1
                with contextlib.suppress(FileNotFoundError):
                    os.utime(path)  # recently used: evicted last
            yield str(path)
        if (self.directory / _OVER_MARKER).exists():
            self.evict()

    def size(self) -> int:
        """Bytes of cached media (temporaries and lock files not counted)."""
        return sum(size for _, size, _ in self._files())

    def evict(self) -> int:
        """Delete least recently used files not in use until the cache holds at most ``max_bytes``;
        returns the bytes freed."""
        files = sorted(self._files())
        total = sum(size for _, size, _ in files)
        freed = 0
        for _, size, path in files:
            if total <= self.max_bytes:
                break
            if self._delete_unused(path.name.split("-", 1)[0], path):
                total -= size
                freed += size
        self._clean_temporaries()
        marker = self.directory / _OVER_MARKER
        if total > self.max_bytes:
            marker.touch()
        else:
            marker.unlink(missing_ok=True)
        return freed

    # -- helpers ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self, key: str) -> Iterator[int]:
        (self.directory / _LOCKS).mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / _LOCKS / key, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            yield fd
        finally:
            os.close(fd)  # releases the flock

    def _delete_unused(self, key: str, path: Path) -> bool:
        with self._lock(key) as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # in use (or being downloaded)
            path.unlink(missing_ok=True)
            return True

    def _files(self) -> list[tuple[int, int, Path]]:
        """``(mtime_ns, size, path)`` of every cached file."""
        found = []
        try:
            with os.scandir(self.directory) as entries:
                for entry in entries:
                    if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                        continue
                    with contextlib.suppress(FileNotFoundError):
                        stat = entry.stat(follow_symlinks=False)
                        found.append((stat.st_mtime_ns, stat.st_size, Path(entry.path)))
        except FileNotFoundError:
            pass
        return found

    def _clean_temporaries(self) -> None:
        # ``.<key>-<name>.<random>.tmp`` (dgnode.atomic): left behind only by a killed download,
        # whose lock is then free.
        with contextlib.suppress(FileNotFoundError), os.scandir(self.directory) as entries:
            for entry in entries:
                if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                    key = entry.name[1:].split("-", 1)[0]
                    if len(key) == 32:
                        self._delete_unused(key, Path(entry.path))
