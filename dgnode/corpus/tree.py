"""Where the scan reads a raw release from: a local folder or an ``s3://`` prefix, behind one API.

Paths are strings joined with ``/``: an absolute local path or an ``s3://bucket/key`` URI, so what
the scan writes into the manifest and the rejects table names the file where it lives.

* :class:`LocalTree` lists one folder per call (``os.scandir``) and follows links; an entry that
  cannot be followed (a symlink loop, a link into an unreadable folder) carries the error, so the
  scan drops only that entry.
* :class:`ObjectTree` lists the whole prefix **once** (a paged LIST of up to 1000 keys per
  request, folders implied by the keys: pyarrow lists recursively without a delimiter since
  Arrow 13, apache/arrow#35440) into an in-memory tree: finding the sessions and the dialogues
  then costs no request per folder (the real release, ~100k objects, is ~100 requests). Contents are read on demand; :meth:`CorpusTree.readers`
  reads the small text files of the next dialogues on a thread pool while the scan parses the
  current one (one GET per file cannot be avoided, waiting for each in turn can). Object storage
  has no links, so nothing there can loop.
"""

from __future__ import annotations

import os
import posixpath
from collections import defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from dgnode.errors import InputError

__all__ = ["CorpusTree", "Entry", "LocalTree", "ObjectTree", "Reader", "open_tree"]

# Enough requests in flight to hide S3's per-request latency; the files are a few KB each.
_READ_THREADS = 16
# Dialogues whose text files are read ahead of the one being parsed.
_READ_AHEAD = 8

Reader = Callable[[str], bytes]


@dataclass(frozen=True)
class Entry:
    """A folder entry; ``error`` is why it cannot be followed (then it is neither file nor folder)."""

    name: str
    path: str
    is_dir: bool
    is_file: bool
    error: OSError | None = None


class CorpusTree:
    """A read-only tree of files under :attr:`root`; see the module docstring."""

    root: str
    is_remote: bool = False

    @staticmethod
    def join(base: str, *parts: str) -> str:
        return posixpath.join(base, *parts)

    @staticmethod
    def name(path: str) -> str:
        return posixpath.basename(path.rstrip("/"))

    def entries(self, directory: str) -> list[Entry]:
        """Every entry of ``directory`` (junk included), sorted by name; ``OSError`` if it cannot be listed."""
        raise NotImplementedError

    def is_dir(self, path: str) -> bool:
        raise NotImplementedError

    def count_files(self, directory: str) -> int:
        """Files at any depth under ``directory`` (what a skipped ``__MACOSX`` folder held)."""
        raise NotImplementedError

    def identity(self, path: str) -> str:
        """The same string for two paths that name one folder (links), to break loops."""
        return path

    def read_bytes(self, path: str) -> bytes:
        raise NotImplementedError

    def readers(self, groups: Sequence[Sequence[str]]) -> Iterator[Reader]:
        """One reader per group of paths, in order; a remote tree reads ahead (module docstring)."""
        for _ in groups:
            yield self.read_bytes


class LocalTree(CorpusTree):
    """A folder on this machine."""

    def __init__(self, root: str) -> None:
        self.root = root

    def entries(self, directory: str) -> list[Entry]:
        with os.scandir(directory) as iterator:
            found = sorted(iterator, key=lambda e: e.name)
        out = []
        for entry in found:
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()  # both follow links
            except OSError as error:
                out.append(Entry(entry.name, entry.path, False, False, error))
                continue
            out.append(Entry(entry.name, entry.path, is_dir, is_file))
        return out

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(path)

    def count_files(self, directory: str) -> int:
        return sum(len(files) for _, _, files in os.walk(directory))

    def identity(self, path: str) -> str:
        return os.path.realpath(path)

    def read_bytes(self, path: str) -> bytes:
        return Path(path).read_bytes()


class ObjectTree(CorpusTree):
    """Every object under an ``s3://`` prefix, listed once (see the module docstring)."""

    is_remote = True

    def __init__(self, location) -> None:
        import pyarrow.fs as pafs

        self.location = location
        self.root = location.uri.rstrip("/")
        from dgnode.storage import s3_error

        try:
            infos = location.fs.get_file_info(pafs.FileSelector(location.path, recursive=True, allow_not_found=True))
        except OSError as error:
            raise s3_error(location.uri, error, "list the corpus") from None
        prefix = location.path.rstrip("/") + "/"
        self._children: dict[str, dict[tuple[str, bool], None]] = defaultdict(dict)
        self._files_below: dict[str, int] = defaultdict(int)
        for info in infos:
            relative = info.path[len(prefix):] if info.path.startswith(prefix) else None
            if not relative:
                continue
            is_dir = info.type == pafs.FileType.Directory
            parent, _, name = relative.rpartition("/")
            # An object and a "folder" may share a name in S3 (keys a/b and a/b/c): both are listed.
            self._children[parent][(name, is_dir)] = None
            if not is_dir:
                while parent:
                    self._files_below[parent] += 1
                    parent = parent.rpartition("/")[0]
                self._files_below[""] += 1
            else:
                self._children.setdefault(relative, {})

    @property
    def empty(self) -> bool:
        return not self._children.get("")

    def _relative(self, path: str) -> str:
        return path[len(self.root):].strip("/")

    def entries(self, directory: str) -> list[Entry]:
        relative = self._relative(directory)
        if relative not in self._children:
            raise FileNotFoundError(f"no such folder in the listing: {directory}")
        items = sorted(self._children[relative], key=lambda item: (item[0], item[1]))
        return [Entry(name, self.join(directory, name), is_dir, not is_dir) for name, is_dir in items]

    def is_dir(self, path: str) -> bool:
        return self._relative(path) in self._children

    def count_files(self, directory: str) -> int:
        return self._files_below.get(self._relative(directory), 0)

    def read_bytes(self, path: str) -> bytes:
        from dgnode.storage import resolve

        return resolve(path).read_bytes()

    def readers(self, groups: Sequence[Sequence[str]]) -> Iterator[Reader]:
        with ThreadPoolExecutor(_READ_THREADS, thread_name_prefix="corpus-read") as pool:
            pending: deque[dict[str, Future]] = deque()
            upcoming = iter(groups)

            def submit_next() -> None:
                group = next(upcoming, None)
                if group is not None:
                    pending.append({path: pool.submit(self.read_bytes, path) for path in dict.fromkeys(group)})

            for _ in range(_READ_AHEAD):
                submit_next()
            for _ in range(len(groups)):
                futures = pending.popleft()
                submit_next()
                yield _prefetched(futures, self.read_bytes)


def _prefetched(futures: dict[str, Future], fallback: Reader) -> Reader:
    def read(path: str) -> bytes:
        future = futures.get(path)
        return future.result() if future is not None else fallback(path)

    return read


def open_tree(root: str | os.PathLike[str]) -> CorpusTree:
    """The tree under ``root`` (a local folder or ``s3://bucket/prefix``); one
    :class:`~dgnode.errors.InputError` naming it when it cannot be read as a folder."""
    text = os.fspath(root)
    if text.startswith("s3://"):
        from dgnode.storage import resolve

        location = resolve(text)
        location.check_bucket()  # unreachable endpoint, refused credentials, missing bucket: one line
        tree = ObjectTree(location)
        if tree.empty:
            raise InputError("corpus root is not a directory: no object under this prefix", tree.root)
        return tree
    try:
        resolved = Path(text).resolve()
    except (OSError, RuntimeError) as error:  # Python 3.11 raises RuntimeError for a symlink loop
        raise InputError(f"corpus root cannot be followed ({error})", text) from None
    if not resolved.is_dir():
        raise InputError("corpus root is not a directory", str(resolved))
    return LocalTree(str(resolved))
