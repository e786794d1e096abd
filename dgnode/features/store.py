"""The Parquet feature store: one row per utterance, one fixed-length float32 column per modality.

Layout of a store directory::

    STORE/
      metadata.json                 model, checkpoint sha256, dims, label names, preprocessing
      part-<time>-<uid>.parquet     utterance rows (any number of parts)
      failures/part-*.parquet       utterances that could not be embedded, with the error
      provenance/part-*.parquet     (extraction) frames and audio source used per utterance

Row columns: ``dialog_id`` (str), ``utt_id`` (str, unique), ``order`` (int32, position in the
conversation), ``speaker`` (str), ``label`` (int32, null when unlabelled), ``split``
(``train``/``valid``/``test``) and one ``fixed_size_list<float32, dim>`` column per modality
in ``metadata.dims``.

Writing is idempotent and crash-safe: a part is written under a hidden temporary name and
renamed into place, so a half-written file never counts as present; :meth:`FeatureStore.append`
drops rows whose ``utt_id`` is already stored, so re-running an extraction never duplicates.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dgnode.atomic import atomic_write, write_text
from dgnode.corpus.splits import SPLITS
from dgnode.errors import InputError

MODALITIES = ("text", "audio", "vision")
KEY_COLUMNS = ("dialog_id", "utt_id", "order", "speaker", "label", "split")
METADATA_FILE = "metadata.json"
FAILURES_DIR = "failures"
FAILURE_COLUMNS = ("utt_id", "dialog_id", "modality", "path", "error")
PROVENANCE_DIR = "provenance"
# Inputs that identify what a store's rows were made from (hashes of the structure file or pickle).
IDENTITY_EXTRA_KEYS = ("structure_sha256", "pickle_sha256")


@dataclass
class StoreMetadata:
    """What produced the vectors; stored as ``metadata.json`` beside the parts."""

    model: str
    dims: dict[str, int]
    label_names: list[str]
    checkpoint_sha256: str | None = None
    source: str = "imagebind"
    preprocessing: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.dims) - set(MODALITIES))
        if unknown:
            raise ValueError(f"unknown modalities {unknown}; expected a subset of {list(MODALITIES)}")
        if not self.dims:
            raise ValueError("a feature store needs at least one modality")
        for name, dim in self.dims.items():
            if int(dim) <= 0:
                raise ValueError(f"dimension of {name} must be positive, got {dim}")

    @property
    def modalities(self) -> list[str]:
        return [m for m in MODALITIES if m in self.dims]

    def compatible_with(self, other: "StoreMetadata") -> list[str]:
        """Differences that forbid mixing rows of ``other`` into a store with this metadata.

        Rows are comparable only when made by the same model, checkpoint, source and
        preprocessing from the same input (``extra`` keys of :data:`IDENTITY_EXTRA_KEYS`):
        re-running with another seed, crop or pickle must not add rows to, or silently keep the
        rows of, a store whose metadata describes another run.
        """
        problems = []
        for name in ("model", "dims", "label_names", "checkpoint_sha256", "source"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                problems.append(f"{name}: store has {mine!r}, new rows have {theirs!r}")
        changed = sorted(
            k for k in {*self.preprocessing, *other.preprocessing} if self.preprocessing.get(k) != other.preprocessing.get(k)
        )
        if changed:
            problems.append(
                "settings differ: "
                + ", ".join(f"{k} (store {self.preprocessing.get(k)!r}, now {other.preprocessing.get(k)!r})" for k in changed)
            )
        for key in IDENTITY_EXTRA_KEYS:
            if self.extra.get(key) != other.extra.get(key):
                problems.append(f"{key}: store has {self.extra.get(key)!r}, new rows have {other.extra.get(key)!r}")
        return problems


@dataclass
class StoredFeatures:
    """A store read into memory: ``frame`` holds the key columns, ``vectors[m]`` the aligned rows."""

    frame: pd.DataFrame
    vectors: dict[str, np.ndarray]
    metadata: StoreMetadata


class FeatureStore:
    """A directory of Parquet parts plus ``metadata.json``; see the module docstring."""

    def __init__(self, root: str | Path, metadata: StoreMetadata) -> None:
        self.root = Path(root)
        self.metadata = metadata

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, metadata: StoreMetadata) -> "FeatureStore":
        """Open ``root`` for writing, creating it; an existing store must have compatible metadata."""
        root = Path(root)
        if (root / METADATA_FILE).exists():
            store = cls.open(root)
            problems = store.metadata.compatible_with(metadata)
            if problems:
                raise InputError(
                    "existing feature store was made differently; use a new --store or remove it: "
                    + "; ".join(problems),
                    path=str(root / METADATA_FILE),
                )
            return store
        root.mkdir(parents=True, exist_ok=True)
        write_text(root / METADATA_FILE, json.dumps(dataclasses.asdict(metadata), indent=2))
        return cls(root, metadata)

    @classmethod
    def open(cls, root: str | Path) -> "FeatureStore":
        root = Path(root)
        path = root / METADATA_FILE
        if not path.exists():
            raise InputError(f"not a feature store: {METADATA_FILE} is missing", path=str(root))
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            metadata = StoreMetadata(**raw)
        except (json.JSONDecodeError, TypeError, ValueError) as error:
            raise InputError(f"unreadable store metadata ({error})", path=str(path)) from None
        return cls(root, metadata)

    @property
    def schema(self) -> pa.Schema:
        fields = [
            pa.field("dialog_id", pa.string(), nullable=False),
            pa.field("utt_id", pa.string(), nullable=False),
            pa.field("order", pa.int32(), nullable=False),
            pa.field("speaker", pa.string(), nullable=False),
            pa.field("label", pa.int32(), nullable=True),
            pa.field("split", pa.string(), nullable=False),
        ]
        for modality in self.metadata.modalities:
            dim = int(self.metadata.dims[modality])
            fields.append(pa.field(modality, pa.list_(pa.float32(), dim), nullable=False))
        return pa.schema(fields)

    # -- parts -----------------------------------------------------------------------------
    def part_paths(self) -> list[Path]:
        """Complete parts only: temporary files are hidden (leading dot) and never listed."""
        return sorted(p for p in self.root.glob("part-*.parquet") if p.is_file())

    def stored_utt_ids(self) -> set[str]:
        ids: set[str] = set()
        for part in self.part_paths():
            ids.update(pq.read_table(part, columns=["utt_id"]).column("utt_id").to_pylist())
        return ids

    def __len__(self) -> int:
        return sum(pq.ParquetFile(p).metadata.num_rows for p in self.part_paths())

    def append(self, rows: pd.DataFrame | pa.Table, skip_ids: set[str] | None = None) -> int:
        """Write the rows not yet stored as one new part; returns how many were written.

        ``rows`` has the key columns and one column per modality of the store, each a sequence
        of ``dim`` floats (lists, numpy rows or a 2-D array column). ``skip_ids`` (ids known to
        be stored) saves re-reading the store for every batch.
        """
        table = self._to_table(rows)
        known = self.stored_utt_ids() if skip_ids is None else skip_ids
        ids = table.column("utt_id").to_pylist()
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            dupes = sorted({i for i in ids if i in seen or seen.add(i)})
            raise InputError(f"rows to store repeat utt_id(s) {dupes[:5]}", path=str(self.root))
        keep = [i for i, utt in enumerate(ids) if utt not in known]
        if not keep:
            return 0
        if len(keep) != len(ids):
            table = table.take(pa.array(keep, type=pa.int64()))
        name = f"part-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:12]}.parquet"
        _atomic_write_parquet(table, self.root / name)
        if skip_ids is not None:
            skip_ids.update(ids[i] for i in keep)
        return len(keep)

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
        parts = self.part_paths()
        if not parts:
            raise InputError("feature store holds no rows", path=str(self.root))
        table = pa.concat_tables([pq.read_table(p, columns=[*KEY_COLUMNS, *wanted]) for p in parts])
        frame = table.select(list(KEY_COLUMNS)).to_pandas()
        frame["label"] = frame["label"].astype("Int32")
        frame = frame.drop_duplicates("utt_id", keep="first")
        frame = frame.sort_values(["dialog_id", "order"], kind="stable")
        index = frame.index.to_numpy()
        vectors = {}
        for modality in wanted:
            dim = int(self.metadata.dims[modality])
            column = table.column(modality).combine_chunks()
            vectors[modality] = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)[index]
        return StoredFeatures(frame.reset_index(drop=True), vectors, self.metadata)

    def fingerprint(self) -> str:
        """Hash of the metadata and the parts' names and sizes: changes when the content does."""
        digest = hashlib.sha256(json.dumps(dataclasses.asdict(self.metadata), sort_keys=True).encode())
        for part in self.part_paths():
            digest.update(f"{part.name}:{part.stat().st_size}".encode())
        return digest.hexdigest()[:16]

    # -- provenance ------------------------------------------------------------------------
    def append_provenance(self, rows: pd.DataFrame | pa.Table) -> int:
        """Record how utterances were made (extraction: frames and audio source used), one new
        part per call; ``rows`` needs ``utt_id``, any other columns are kept as they are."""
        from dgnode.atomic import atomic_write

        table = rows if isinstance(rows, pa.Table) else pa.Table.from_pandas(rows, preserve_index=False)
        if "utt_id" not in table.column_names:
            raise ValueError("provenance rows lack column utt_id")
        if not table.num_rows:
            return 0
        name = f"part-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:12]}.parquet"
        atomic_write(self.root / PROVENANCE_DIR / name, lambda tmp: pq.write_table(table, tmp))
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
        directory = self.root / FAILURES_DIR
        directory.mkdir(exist_ok=True)
        table = pa.Table.from_pandas(failures[list(FAILURE_COLUMNS)].astype(str), preserve_index=False)
        _atomic_write_parquet(table, directory / f"part-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:12]}.parquet")
        return len(failures)

    def load_failures(self) -> pd.DataFrame:
        parts = sorted((self.root / FAILURES_DIR).glob("part-*.parquet"))
        if not parts:
            return pd.DataFrame(columns=list(FAILURE_COLUMNS))
        return pd.concat([pq.read_table(p).to_pandas() for p in parts], ignore_index=True)

    def clear_failures(self, utt_ids: set[str]) -> None:
        """Forget earlier failures of utterances that have now been stored (a retry succeeded)."""
        for part in sorted((self.root / FAILURES_DIR).glob("part-*.parquet")):
            frame = pq.read_table(part).to_pandas()
            kept = frame[~frame["utt_id"].isin(utt_ids)]
            if len(kept) == len(frame):
                continue
            if kept.empty:
                part.unlink()
            else:
                _atomic_write_parquet(pa.Table.from_pandas(kept, preserve_index=False), part)


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
