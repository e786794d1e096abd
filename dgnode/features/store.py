"""The Parquet feature store: one row per utterance, one fixed-length float32 column per modality.

A store is a local folder or an ``s3://bucket/prefix`` (given as a path, a URI or a
:class:`~dgnode.storage.Location`; everything below holds on both)::

    STORE/
      metadata.json                 model, checkpoint sha256, dims, label names, preprocessing
      part-<time>-<uid>.parquet     utterance rows (any number of parts)
      failures/part-*.parquet       utterances that could not be embedded, with the error
      provenance/part-*.parquet     (extraction) frames and audio source used per utterance
      .writer.lock                  present while a writer commits (dgnode.features.lock)

Row columns: ``dialog_id`` (str), ``utt_id`` (str, unique), ``order`` (int32, position in the
conversation), ``speaker`` (str), ``label`` (int32, null when unlabelled), ``split``
(``train``/``valid``/``test``) and one ``fixed_size_list<float32, dim>`` column per modality
in ``metadata.dims``.

What is guaranteed:

* **Bad locations refused first.** Opening or creating a store checks the bucket of an
  ``s3://`` store before anything else (unreachable endpoint, refused credentials, missing
  bucket: one error naming the URI); :meth:`FeatureStore.open` of a location without
  ``metadata.json`` is one :class:`~dgnode.errors.InputError` naming it.
* **Checked on open.** Every part's schema and statistics are checked against
  ``metadata.json`` (:mod:`dgnode.features.validation`, footers only); a part that disagrees is
  one :class:`~dgnode.errors.InputError` naming it. Parts that appear later are checked when
  first read.
* **A part counts only when completely written.** Locally it is written under a hidden temporary
  name and renamed into place (the commit); the temporaries of a writer killed mid-write are
  removed by the next writer. On S3, where there is no rename, it is built in memory and stored
  by one PUT of the whole object with its ``Content-MD5`` (:mod:`dgnode.features.parts`): the
  server keeps all of it or nothing, a writer killed or failing mid-upload leaves no object, and
  nothing is ever stored under a temporary name. (Not through pyarrow's S3 output stream: its
  multipart upload becomes visible only when completed, but it is completed on close also after
  the code writing into it failed, publishing half a part; both checked against SeaweedFS.) A
  listing, so a reader, sees complete parts only.
* **Each utterance once, with any number of writers on any hosts.** Every write happens under
  the store's writer lock (:class:`~dgnode.features.lock.StoreLock`: created only if absent,
  stale locks broken only if unchanged). Under it :meth:`FeatureStore.append` lists the parts,
  reads the ``utt_id`` of every part committed since it last looked and drops rows already
  stored, so two extractions into one store at once end with each utterance stored exactly once,
  none lost, and a re-run stores nothing twice. Locally this holds where ``O_EXCL`` create and
  ``rename`` are atomic (local disks, NFSv3+). On S3 it assumes (1) conditional requests: a PUT
  with ``If-None-Match: *`` and a DELETE with ``If-Match`` (AWS S3 since 2024, SeaweedFS, MinIO;
  a server that ignores them is detected when the lock is taken and refused), (2) strongly
  consistent listings: an object whose PUT has returned is in every later listing (AWS S3 since
  December 2020, SeaweedFS), and (3) a writer ends its commit within the lock's lease (600 s,
  by the server's clock) of taking the lock: a lock of another host older than that is judged
  left by a dead writer and broken. A writer that has held the lock past half the lease checks
  that it is still its own before it commits and stops with one error if not, so only a commit
  started before that mark and stalled past the lease (minutes in one PUT) could overlap
  another's: rows stored twice, none lost (readers keep the first and report the repeats). A
  writer that died holding the lock on another host delays the others by up to the lease.
  Stores written without the lock (older versions) may hold repeats: reading keeps the first
  row of an ``utt_id`` in part-name order and reports the others
  (:attr:`StoredFeatures.duplicates`, ``dgnode features info``) instead of hiding them.
* **Provenance with its rows.** :meth:`FeatureStore.append` given ``provenance`` writes it, under
  the same lock and part name, *before* the rows part whose write commits both: a stored row
  always has its provenance, whatever stopped the writer (an attempt that did not commit may
  leave provenance of rows a later run stores again: readers take the last).
* **One line when storage fails.** A write refused by the file system (full, read-only, no
  permission) is one :class:`~dgnode.errors.EnvironmentFault` naming the store, an S3 request
  that fails one error naming the object; every part committed before it is kept, and
  re-running the same command resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa

from dgnode.errors import EnvironmentFault, InputError
from dgnode.features.lock import StoreLock
from dgnode.features.metadata import (
    IDENTITY_EXTRA_KEYS, KEY_COLUMNS, METADATA_FILE, MODALITIES, StoreMetadata, read_metadata, write_metadata,
)
from dgnode.features.parts import PART_PATTERN, map_parts, part_name, part_rows, read_part, write_part
from dgnode.features.validation import check_part, row_schema, rows_table
from dgnode.storage import Location, resolve

__all__ = [
    "FAILURE_COLUMNS", "FAILURES_DIR", "IDENTITY_EXTRA_KEYS", "KEY_COLUMNS", "METADATA_FILE", "MODALITIES",
    "PROVENANCE_DIR", "FeatureStore", "StoreMetadata", "StoredFeatures",
]

FAILURES_DIR = "failures"
FAILURE_COLUMNS = ("utt_id", "dialog_id", "modality", "path", "error")
PROVENANCE_DIR = "provenance"
# What to do about a write the file system refused, by errno.
_ADVICE = {errno.ENOSPC: "free space on its file system", errno.EDQUOT: "free space (disk quota exceeded)",
           errno.EROFS: "make it writable", errno.EACCES: "make it writable", errno.EPERM: "make it writable"}


@dataclass
class StoredFeatures:
    """A store read into memory: ``frame`` holds the key columns, ``vectors[m]`` the aligned rows.

    ``duplicates`` counts stored rows dropped because their ``utt_id`` came earlier (in part-name
    order); a store written under the writer lock has none.
    """

    frame: pd.DataFrame
    vectors: dict[str, np.ndarray]
    metadata: StoreMetadata
    duplicates: int = 0


class FeatureStore:
    """A folder (or ``s3://`` prefix) of Parquet parts plus ``metadata.json``; see the module
    docstring. ``root`` is the store's :class:`~dgnode.storage.Location`."""

    def __init__(self, root: str | Path | Location, metadata: StoreMetadata) -> None:
        self.root = resolve(root)
        self.metadata = metadata
        self._lock = StoreLock(self.root)
        self._checked: set[str] = set()  # part names checked against the metadata
        self._indexed: set[str] = set()  # part names whose utt_ids are in self._ids
        self._ids: set[str] = set()
        self._swept = False  # temporaries of killed writers removed (under the lock)

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path | Location, metadata: StoreMetadata) -> "FeatureStore":
        """Open ``root`` for writing, creating it; an existing store must have compatible metadata."""
        root = resolve(root)
        root.check_bucket()
        if root.is_file():
            raise InputError("not a folder: a feature store is a folder; give a new or existing store folder",
                             path=str(root))
        if not (root / METADATA_FILE).exists():
            store = cls(root, metadata)
            try:
                root.mkdir()
            except OSError as error:
                raise _write_fault(root, "the store folder", error) from None
            # Under the lock: two writers creating one store agree on one metadata.json.
            with store.writing(METADATA_FILE):
                if not (root / METADATA_FILE).exists():
                    write_metadata(root, metadata)
                    return store
        store = cls.open(root)
        problems = store.metadata.compatible_with(metadata)
        if problems:
            raise InputError(
                "existing feature store was made differently; use a new --store or remove it: "
                + "; ".join(problems),
                path=str(root / METADATA_FILE),
            )
        return store

    @classmethod
    def open(cls, root: str | Path | Location) -> "FeatureStore":
        """The store at ``root``, every part checked against its ``metadata.json``."""
        root = resolve(root)
        root.check_bucket()
        store = cls(root, read_metadata(root))
        store.check()
        return store

    def check(self) -> None:
        """Check the parts not yet checked against the metadata (see :mod:`dgnode.features.validation`)."""
        self._check_new(self.part_paths())

    def _check_new(self, parts: list[Location]) -> None:
        new = [part for part in parts if part.name not in self._checked]
        map_parts(lambda part: check_part(part, self.metadata), new)
        self._checked.update(part.name for part in new)

    @property
    def schema(self) -> pa.Schema:
        return row_schema(self.metadata)

    # -- writing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self, what: str = "rows") -> Iterator[None]:
        """Hold the writer lock (re-entrant) for several writes that belong together; a write the
        file system refuses becomes one :class:`EnvironmentFault` naming the store and ``what``."""
        try:
            with self._lock:
                if not self._swept:
                    self._sweep_temporaries()
                yield
        except OSError as error:
            if error.errno is None:  # Arrow's own errors (a corrupt part) are not the disk's
                raise
            raise _write_fault(self.root, what, error) from None

    def _sweep_temporaries(self) -> None:
        """Remove the temporaries of writers killed mid-write: every write holds the lock, so
        under it no temporary belongs to a live writer. S3 writes use none."""
        if not self.root.is_remote:
            for folder in (self.root, self.root / PROVENANCE_DIR, self.root / FAILURES_DIR):
                for temporary in folder.children(".*.tmp"):
                    temporary.delete()
        self._swept = True

    def part_paths(self) -> list[Location]:
        """The row parts, sorted by name: complete parts only (temporary files are hidden, leading dot)."""
        return self.root.children(PART_PATTERN)

    def stored_utt_ids(self) -> set[str]:
        """The ``utt_id`` of every stored row (a copy)."""
        return set(self._refresh_ids())

    def __len__(self) -> int:
        """Stored rows, repeats of an ``utt_id`` included (see :attr:`StoredFeatures.duplicates`)."""
        return sum(map_parts(part_rows, self.part_paths()))

    def append(self, rows: pd.DataFrame | pa.Table, skip_ids: set[str] | None = None,
               provenance: pa.Table | pd.DataFrame | None = None) -> int:
        """Write the rows not yet stored as one new part; returns how many were written.

        ``rows`` has the key columns and one column per modality of the store, each a sequence
        of ``dim`` floats (lists, numpy rows or a 2-D array column). Rows whose ``utt_id`` is in
        the store, or in ``skip_ids``, are dropped; ``skip_ids`` is updated with what this call
        found stored and wrote. ``provenance`` (rows with ``utt_id``) is committed with the rows:
        see the module docstring.
        """
        table = rows_table(rows, self.metadata, self.root)
        ids = table.column("utt_id").to_pylist()
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            dupes = sorted({i for i in ids if i in seen or seen.add(i)})
            raise InputError(f"rows to store repeat utt_id(s) {dupes[:5]}", path=str(self.root))
        name = part_name()
        with self.writing(name):
            known = self._refresh_ids()
            if skip_ids is not None:
                skip_ids.update(known)
            keep = [i for i, utt in enumerate(ids) if utt not in known and (skip_ids is None or utt not in skip_ids)]
            self._lock.check_held()
            if provenance is not None:
                self.append_provenance(provenance, name=name)
            if not keep:
                return 0
            if len(keep) != len(ids):
                table = table.take(pa.array(keep, type=pa.int64()))
            _atomic_write_parquet(table, self.root / name)
            written = [ids[i] for i in keep]
            self._ids.update(written)
            self._indexed.add(name)
            self._checked.add(name)
            if skip_ids is not None:
                skip_ids.update(written)
        return len(keep)

    def _refresh_ids(self) -> set[str]:
        """Add the ids of parts committed since the last look (by any writer) to the index."""
        new = [part for part in self.part_paths() if part.name not in self._indexed]
        self._check_new(new)
        for part, table in zip(new, map_parts(lambda part: read_part(part, ["utt_id"]), new)):
            self._ids.update(table.column("utt_id").to_pylist())
            self._indexed.add(part.name)
        return self._ids

    # -- reading ---------------------------------------------------------------------------
    def load(self, modalities: Iterable[str] | None = None) -> StoredFeatures:
        """All rows, sorted by dialogue and order, with vectors as ``(n, dim)`` float32 arrays."""
        wanted = list(modalities) if modalities is not None else self.metadata.modalities
        absent = [m for m in wanted if m not in self.metadata.dims]
        if absent:
            raise InputError(
                f"modalities {absent} are not in this store (it has {self.metadata.modalities})",
                path=str(self.root),
            )
        parts = self.part_paths()
        self._check_new(parts)
        if not parts:
            raise InputError("feature store holds no rows", path=str(self.root))
        table = pa.concat_tables(map_parts(lambda part: read_part(part, [*KEY_COLUMNS, *wanted]), parts))
        frame = table.select(list(KEY_COLUMNS)).to_pandas()
        frame["label"] = frame["label"].astype("Int32")
        rows = len(frame)
        frame = frame.drop_duplicates("utt_id", keep="first")
        frame = frame.sort_values(["dialog_id", "order"], kind="stable")
        index = frame.index.to_numpy()
        vectors = {}
        for modality in wanted:
            dim = int(self.metadata.dims[modality])
            column = table.column(modality).combine_chunks()
            vectors[modality] = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)[index]
        return StoredFeatures(frame.reset_index(drop=True), vectors, self.metadata, duplicates=rows - len(frame))

    def fingerprint(self) -> str:
        """Hash of the metadata and the parts' names and sizes: changes when the content does."""
        digest = hashlib.sha256(json.dumps(dataclasses.asdict(self.metadata), sort_keys=True).encode())
        parts = self.part_paths()
        for part, size in zip(parts, map_parts(Location.size, parts)):
            digest.update(f"{part.name}:{size}".encode())
        return digest.hexdigest()[:16]

    # -- provenance ------------------------------------------------------------------------
    def append_provenance(self, rows: pd.DataFrame | pa.Table, name: str | None = None) -> int:
        """Record how utterances were made (extraction: frames and audio source used), one new
        part per call; ``rows`` needs ``utt_id``, any other columns are kept as they are.
        ``name``: the part name (:meth:`append` gives its rows' part name)."""
        table = rows if isinstance(rows, pa.Table) else pa.Table.from_pandas(rows, preserve_index=False)
        if "utt_id" not in table.column_names:
            raise ValueError("provenance rows lack column utt_id")
        if not table.num_rows:
            return 0
        name = name or part_name()
        with self.writing(f"{PROVENANCE_DIR}/{name}"):
            _atomic_write_parquet(table, self.root / PROVENANCE_DIR / name)
        return table.num_rows

    def read_provenance(self) -> pd.DataFrame:
        """Every provenance row (one per processed utterance and run, oldest part first)."""
        tables = _read_all((self.root / PROVENANCE_DIR).children(PART_PATTERN))
        if not tables:
            return pd.DataFrame(columns=["utt_id"])
        return pd.concat([t.to_pandas() for t in tables], ignore_index=True)

    # -- failures --------------------------------------------------------------------------
    def append_failures(self, failures: pd.DataFrame) -> int:
        """Record utterances that could not be embedded (columns: FAILURE_COLUMNS)."""
        if failures.empty:
            return 0
        missing = [c for c in FAILURE_COLUMNS if c not in failures.columns]
        if missing:
            raise ValueError(f"failure rows lack column(s) {missing}")
        table = pa.Table.from_pandas(failures[list(FAILURE_COLUMNS)].astype(str), preserve_index=False)
        name = part_name()
        with self.writing(f"{FAILURES_DIR}/{name}"):
            _atomic_write_parquet(table, self.root / FAILURES_DIR / name)
        return len(failures)

    def load_failures(self) -> pd.DataFrame:
        tables = _read_all((self.root / FAILURES_DIR).children(PART_PATTERN))
        if not tables:
            return pd.DataFrame(columns=list(FAILURE_COLUMNS))
        return pd.concat([t.to_pandas() for t in tables], ignore_index=True)

    def clear_failures(self, utt_ids: set[str]) -> None:
        """Forget earlier failures of utterances that have now been stored (a retry succeeded)."""
        with self.writing(FAILURES_DIR):
            parts = (self.root / FAILURES_DIR).children(PART_PATTERN)
            for part, table in zip(parts, map_parts(read_part, parts)):
                frame = table.to_pandas()
                kept = frame[~frame["utt_id"].isin(utt_ids)]
                if len(kept) == len(frame):
                    continue
                if kept.empty:
                    part.delete()
                else:
                    _atomic_write_parquet(pa.Table.from_pandas(kept, preserve_index=False), part)


def _read_all(parts: list[Location]) -> list[pa.Table]:
    """Whole parts that are still there (failure parts are rewritten or removed by a writer
    clearing retried failures while a reader lists them)."""
    def read(part: Location) -> pa.Table | None:
        try:
            return read_part(part)
        except FileNotFoundError:
            return None

    return [table for table in map_parts(read, parts) if table is not None]


def _write_fault(root: Location, what: str, error: OSError) -> EnvironmentFault:
    advice = _ADVICE.get(error.errno, "check the file system")
    return EnvironmentFault(
        f"cannot write {what} ({error.strerror or error}): {advice}, then run the same command again; "
        "everything stored before is kept and is not redone",
        path=str(root),
    )


def _atomic_write_parquet(table: pa.Table, location: Location) -> None:
    write_part(table, location)
