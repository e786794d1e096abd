"""The Parquet feature store: one row per utterance, one fixed-length float32 column per modality.

Layout of a store directory::

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

* **Checked on open.** Every part's schema and statistics are checked against
  ``metadata.json`` (:mod:`dgnode.features.validation`, footers only); a part that disagrees is
  one :class:`~dgnode.errors.InputError` naming it. Parts that appear later are checked when
  first read.
* **Crash-safe.** A part is written under a hidden temporary name and renamed into place
  (the commit), so a half-written file never counts as present; the temporaries of a writer
  killed mid-write are removed by the next writer.
* **Each utterance once, with any number of writers.** Every write happens under the store's
  writer lock (:class:`~dgnode.features.lock.StoreLock`: an ``O_EXCL`` lock file with stale-lock
  detection). Under it :meth:`FeatureStore.append` reads the ``utt_id`` of every part committed
  since it last looked and drops rows already stored, so two extractions into one store at once
  end with each utterance stored once, and a re-run stores nothing twice. This holds on file
  systems where ``O_EXCL`` create and ``rename`` are atomic (local disks, NFSv3+); stores written
  without the lock (older versions) may hold repeats: reading keeps the first row of an
  ``utt_id`` in part-name order and reports the others (:attr:`StoredFeatures.duplicates`,
  ``dgnode features info``) instead of hiding them.
* **Provenance with its rows.** :meth:`FeatureStore.append` given ``provenance`` writes it, under
  the same lock and part name, *before* the rows part whose rename commits both: a stored row
  always has its provenance, whatever stopped the writer (an attempt that did not commit may
  leave provenance of rows a later run stores again: readers take the last).
* **One line when the disk fails.** A write refused by the file system (full, read-only, no
  permission) is one :class:`~dgnode.errors.EnvironmentFault` naming the store; every part
  committed before it is kept, and re-running the same command resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dgnode.atomic import atomic_write, write_text
from dgnode.corpus.splits import SPLITS
from dgnode.errors import EnvironmentFault, InputError
from dgnode.features.lock import StoreLock
from dgnode.features.metadata import IDENTITY_EXTRA_KEYS, KEY_COLUMNS, METADATA_FILE, MODALITIES, StoreMetadata
from dgnode.features.validation import check_part, row_schema

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
    """A directory of Parquet parts plus ``metadata.json``; see the module docstring."""

    def __init__(self, root: str | Path, metadata: StoreMetadata) -> None:
        self.root = Path(root)
        self.metadata = metadata
        self._lock = StoreLock(self.root)
        self._checked: set[str] = set()  # part names checked against the metadata
        self._indexed: set[str] = set()  # part names whose utt_ids are in self._ids
        self._ids: set[str] = set()
        self._swept = False  # temporaries of killed writers removed (under the lock)

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, metadata: StoreMetadata) -> "FeatureStore":
        """Open ``root`` for writing, creating it; an existing store must have compatible metadata."""
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise InputError("not a folder: a feature store is a folder; give a new or existing store folder",
                             path=str(root))
        if not (root / METADATA_FILE).exists():
            store = cls(root, metadata)
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise _write_fault(root, "the store folder", error) from None
            # Under the lock: two writers creating one store agree on one metadata.json.
            with store.writing(METADATA_FILE):
                if not (root / METADATA_FILE).exists():
                    write_text(root / METADATA_FILE, json.dumps(dataclasses.asdict(metadata), indent=2))
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
    def open(cls, root: str | Path) -> "FeatureStore":
        """The store at ``root``, every part checked against its ``metadata.json``."""
        root = Path(root)
        path = root / METADATA_FILE
        if not path.exists():
            raise InputError(f"not a feature store: {METADATA_FILE} is missing", path=str(root))
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            metadata = StoreMetadata(**raw)
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError) as error:
            raise InputError(f"unreadable store metadata ({error})", path=str(path)) from None
        store = cls(root, metadata)
        store.check()
        return store

    def check(self) -> None:
        """Check the parts not yet checked against the metadata (see :mod:`dgnode.features.validation`)."""
        for part in self.part_paths():
            if part.name not in self._checked:
                check_part(part, self.metadata)
                self._checked.add(part.name)

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
        under it no temporary belongs to a live writer."""
        for folder in (self.root, self.root / PROVENANCE_DIR, self.root / FAILURES_DIR):
            for temporary in folder.glob(".*.tmp"):
                temporary.unlink(missing_ok=True)
        self._swept = True

    def part_paths(self) -> list[Path]:
        """Complete parts only: temporary files are hidden (leading dot) and never listed."""
        return sorted(p for p in self.root.glob("part-*.parquet") if p.is_file())

    def stored_utt_ids(self) -> set[str]:
        """The ``utt_id`` of every stored row (a copy)."""
        return set(self._refresh_ids())

    def __len__(self) -> int:
        """Stored rows, repeats of an ``utt_id`` included (see :attr:`StoredFeatures.duplicates`)."""
        return sum(pq.ParquetFile(p).metadata.num_rows for p in self.part_paths())

    def append(self, rows: pd.DataFrame | pa.Table, skip_ids: set[str] | None = None,
               provenance: pa.Table | pd.DataFrame | None = None) -> int:
        """Write the rows not yet stored as one new part; returns how many were written.

        ``rows`` has the key columns and one column per modality of the store, each a sequence
        of ``dim`` floats (lists, numpy rows or a 2-D array column). Rows whose ``utt_id`` is in
        the store, or in ``skip_ids``, are dropped; ``skip_ids`` is updated with what this call
        found stored and wrote. ``provenance`` (rows with ``utt_id``) is committed with the rows:
        see the module docstring.
        """
        table = self._to_table(rows)
        ids = table.column("utt_id").to_pylist()
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            dupes = sorted({i for i in ids if i in seen or seen.add(i)})
            raise InputError(f"rows to store repeat utt_id(s) {dupes[:5]}", path=str(self.root))
        name = _part_name()
        with self.writing(name):
            known = self._refresh_ids()
            if skip_ids is not None:
                skip_ids.update(known)
            keep = [i for i, utt in enumerate(ids) if utt not in known and (skip_ids is None or utt not in skip_ids)]
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
        for part in self.part_paths():
            if part.name not in self._indexed:
                if part.name not in self._checked:
                    check_part(part, self.metadata)
                    self._checked.add(part.name)
                self._ids.update(pq.read_table(part, columns=["utt_id"]).column("utt_id").to_pylist())
                self._indexed.add(part.name)
        return self._ids

    def _to_table(self, rows: pd.DataFrame | pa.Table) -> pa.Table:
        frame = rows.to_pandas() if isinstance(rows, pa.Table) else rows
        missing = [c for c in (*KEY_COLUMNS, *self.metadata.modalities) if c not in frame.columns]
        if missing:
            raise InputError(f"rows to store lack column(s) {missing}", path=str(self.root))
        bad_splits = sorted(set(frame["split"]) - set(SPLITS))
        if bad_splits:
            raise InputError(f"unknown split value(s) {bad_splits}; expected {list(SPLITS)}", path=str(self.root))
        arrays = [
            pa.array(frame["dialog_id"].astype(str).tolist(), pa.string()),
            pa.array(frame["utt_id"].astype(str).tolist(), pa.string()),
            pa.array(frame["order"].astype("int64").tolist(), pa.int32()),
            pa.array(frame["speaker"].astype(str).tolist(), pa.string()),
            pa.array([None if pd.isna(v) else int(v) for v in frame["label"]], pa.int32()),
            pa.array(frame["split"].astype(str).tolist(), pa.string()),
        ]
        for modality in self.metadata.modalities:
            dim = int(self.metadata.dims[modality])
            matrix = _as_matrix(frame[modality], modality, dim, self.root)
            flat = pa.array(matrix.reshape(-1), pa.float32())
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, dim))
        return pa.Table.from_arrays(arrays, schema=self.schema)

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
        self.check()
        parts = [p for p in self.part_paths() if p.name in self._checked]
        if not parts:
            raise InputError("feature store holds no rows", path=str(self.root))
        table = pa.concat_tables([pq.read_table(p, columns=[*KEY_COLUMNS, *wanted]) for p in parts])
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
        for part in self.part_paths():
            digest.update(f"{part.name}:{part.stat().st_size}".encode())
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
        name = name or _part_name()
        with self.writing(f"{PROVENANCE_DIR}/{name}"):
            _atomic_write_parquet(table, self.root / PROVENANCE_DIR / name)
        return table.num_rows

    def read_provenance(self) -> pd.DataFrame:
        """Every provenance row (one per processed utterance and run, oldest part first)."""
        parts = sorted((self.root / PROVENANCE_DIR).glob("part-*.parquet"))
        if not parts:
            return pd.DataFrame(columns=["utt_id"])
        return pd.concat([pq.read_table(p).to_pandas() for p in parts], ignore_index=True)

    # -- failures --------------------------------------------------------------------------
    def append_failures(self, failures: pd.DataFrame) -> int:
        """Record utterances that could not be embedded (columns: FAILURE_COLUMNS)."""
        if failures.empty:
            return 0
        missing = [c for c in FAILURE_COLUMNS if c not in failures.columns]
        if missing:
            raise ValueError(f"failure rows lack column(s) {missing}")
        table = pa.Table.from_pandas(failures[list(FAILURE_COLUMNS)].astype(str), preserve_index=False)
        name = _part_name()
        with self.writing(f"{FAILURES_DIR}/{name}"):
            _atomic_write_parquet(table, self.root / FAILURES_DIR / name)
        return len(failures)

    def load_failures(self) -> pd.DataFrame:
        parts = sorted((self.root / FAILURES_DIR).glob("part-*.parquet"))
        if not parts:
            return pd.DataFrame(columns=list(FAILURE_COLUMNS))
        return pd.concat([pq.read_table(p).to_pandas() for p in parts], ignore_index=True)

    def clear_failures(self, utt_ids: set[str]) -> None:
        """Forget earlier failures of utterances that have now been stored (a retry succeeded)."""
        with self.writing(FAILURES_DIR):
            for part in sorted((self.root / FAILURES_DIR).glob("part-*.parquet")):
                frame = pq.read_table(part).to_pandas()
                kept = frame[~frame["utt_id"].isin(utt_ids)]
                if len(kept) == len(frame):
                    continue
                if kept.empty:
                    part.unlink()
                else:
                    _atomic_write_parquet(pa.Table.from_pandas(kept, preserve_index=False), part)


def _part_name() -> str:
    return f"part-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:12]}.parquet"


def _write_fault(root: Path, what: str, error: OSError) -> EnvironmentFault:
    advice = _ADVICE.get(error.errno, "check the file system")
    return EnvironmentFault(
        f"cannot write {what} ({error.strerror or error}): {advice}, then run the same command again; "
        "everything stored before is kept and is not redone",
        path=str(root),
    )


def _as_matrix(column: pd.Series, modality: str, dim: int, root: Path) -> np.ndarray:
    values = column.to_numpy()
    if values.dtype == object:
        try:
            matrix = np.stack([np.asarray(v, dtype=np.float32).reshape(-1) for v in values])
        except ValueError:
            lengths = sorted({len(np.asarray(v).reshape(-1)) for v in values})
            raise InputError(f"{modality} vectors have lengths {lengths}, expected {dim}", path=str(root)) from None
    else:
        matrix = np.asarray(values, dtype=np.float32).reshape(len(values), -1)
    if matrix.shape[1] != dim:
        raise InputError(f"{modality} vectors have length {matrix.shape[1]}, expected {dim}", path=str(root))
    if not np.isfinite(matrix).all():
        raise InputError(f"{modality} vectors contain NaN or infinite values", path=str(root))
    return matrix.astype(np.float32, copy=False)


def _atomic_write_parquet(table: pa.Table, path: Path) -> None:
    atomic_write(path, lambda temporary: pq.write_table(table, temporary))
