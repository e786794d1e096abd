"""A feature store's parts checked against its ``metadata.json``, from Parquet footers only, and
rows shaped into the schema a part holds (:func:`rows_table`).

Each part must have the row schema of :func:`row_schema`: the key columns with their types, and
one ``fixed_size_list<float32, dims[m]>`` column per modality ``m`` of ``metadata.dims`` (no
other modality). From the row-group statistics: no null key (``label`` may be null),
``order >= 0``, ``0 <= label < len(label_names)`` and ``split`` values among the known splits
(its minimum and maximum). Nothing but the footer is read, so checking a store of hundreds of
parts costs milliseconds; a part whose statistics are missing has just its ``label`` column read.

A part that disagrees is refused with one :class:`~dgnode.errors.InputError` naming the part
and what ``metadata.json`` expects: a store whose ``dims.text`` was edited from 32 to 16 must not
be read as twice as many half-vectors.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dgnode.corpus.splits import SPLITS
from dgnode.errors import InputError
from dgnode.features.metadata import KEY_COLUMNS, METADATA_FILE, MODALITIES, StoreMetadata
from dgnode.storage import Location

__all__ = ["KEY_TYPES", "check_part", "row_schema", "rows_table"]

KEY_TYPES = {
    "dialog_id": pa.string(),
    "utt_id": pa.string(),
    "order": pa.int32(),
    "speaker": pa.string(),
    "label": pa.int32(),
    "split": pa.string(),
}
_NULLABLE = frozenset({"label"})


def row_schema(metadata: StoreMetadata) -> pa.Schema:
    """The Arrow schema of every part of a store with ``metadata``."""
    fields = [pa.field(name, kind, nullable=name in _NULLABLE) for name, kind in KEY_TYPES.items()]
    for modality in metadata.modalities:
        fields.append(pa.field(modality, pa.list_(pa.float32(), int(metadata.dims[modality])), nullable=False))
    return pa.schema(fields)


def check_part(path: Location, metadata: StoreMetadata) -> None:
    """Raise :class:`InputError` naming ``path`` when the part disagrees with ``metadata``.
    A failing S3 request is one error naming the part (:mod:`dgnode.storage`), not an unreadable part."""
    try:
        with path.open_input() as handle:
            footer = pq.read_metadata(handle)
        schema = footer.schema.to_arrow_schema()
    except (OSError, pa.ArrowException) as error:
        raise InputError(f"unreadable part ({' '.join(str(error).split())}); move it out of the store "
                         "and re-run the command that wrote it", path=str(path)) from None
    problems = _schema_problems(schema, metadata)
    if not problems:
        problems = _statistics_problems(path, footer, metadata)
    if problems:
        metadata_path = path.parent / METADATA_FILE
        raise InputError(
            f"disagrees with {metadata_path}: {'; '.join(problems)}. The store's parts and metadata.json must "
            "match: restore metadata.json, or write the features into a new store",
            path=str(path),
        )


def _schema_problems(schema: pa.Schema, metadata: StoreMetadata) -> list[str]:
    problems = []
    for name, kind in KEY_TYPES.items():
        if name not in schema.names:
            problems.append(f"key column {name} is missing")
        elif schema.field(name).type != kind:
            problems.append(f"key column {name} is {schema.field(name).type}, expected {kind}")
    for modality in MODALITIES:
        dim = metadata.dims.get(modality)
        if modality not in schema.names:
            if dim is not None:
                problems.append(f"no {modality} column, but dims.{modality} = {dim}")
            continue
        kind = schema.field(modality).type
        if dim is None:
            problems.append(f"a {modality} column, but dims lists only {metadata.modalities}")
        elif not (pa.types.is_fixed_size_list(kind) and kind.value_type == pa.float32()):
            problems.append(f"{modality} holds {_describe(kind)}, expected vectors of {dim} float (dims.{modality} = {dim})")
        elif kind.list_size != dim:
            problems.append(f"{modality} vectors have {kind.list_size} floats, expected dims.{modality} = {dim}")
    return problems


def _describe(kind: pa.DataType) -> str:
    if pa.types.is_fixed_size_list(kind):
        return f"vectors of {kind.list_size} {kind.value_type}"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return f"variable-length lists of {kind.value_type}"
    return str(kind)


def _statistics_problems(path: Location, footer: pq.FileMetaData, metadata: StoreMetadata) -> list[str]:
    columns = {footer.schema.column(i).path: i for i in range(footer.num_columns)}
    classes = len(metadata.label_names)
    problems: list[str] = []
    label_without_statistics = False
    for group in range(footer.num_row_groups):
        row_group = footer.row_group(group)
        for name in KEY_TYPES:
            stats = row_group.column(columns[name]).statistics
            if stats is None:
                label_without_statistics |= name == "label"
                continue
            if name not in _NULLABLE and stats.has_null_count and stats.null_count:
                problems.append(f"{stats.null_count} null {name} value(s)")
            if not stats.has_min_max:
                label_without_statistics |= name == "label" and stats.null_count != row_group.num_rows
                continue
            if name == "order" and stats.min < 0:
                problems.append(f"order values down to {stats.min}, expected >= 0")
            elif name == "label" and (stats.min < 0 or stats.max >= classes):
                problems.append(f"labels {stats.min}..{stats.max}, expected 0..{classes - 1} "
                                f"({classes} label_names) or null")
            elif name == "split" and not {stats.min, stats.max} <= set(SPLITS):
                problems.append(f"split values {sorted({stats.min, stats.max} - set(SPLITS))}, expected {list(SPLITS)}")
    if label_without_statistics and not problems:
        with path.open_input() as handle:
            labels = pq.read_table(handle, columns=["label"]).column("label").drop_null().to_pylist()
        bad = sorted({v for v in labels if not 0 <= v < classes})
        if bad:
            problems.append(f"labels {bad[:5]}, expected 0..{classes - 1} ({classes} label_names) or null")
    return sorted(set(problems), key=problems.index)


def rows_table(rows: pd.DataFrame | pa.Table, metadata: StoreMetadata, where: Location) -> pa.Table:
    """``rows`` (key columns and one column per modality, each a sequence of ``dims[m]`` finite
    floats: lists, numpy rows or a 2-D array column) as a table of :func:`row_schema`;
    :class:`InputError` naming the store ``where`` for a missing column, an unknown split or a
    vector of the wrong length."""
    frame = rows.to_pandas() if isinstance(rows, pa.Table) else rows
    missing = [c for c in (*KEY_COLUMNS, *metadata.modalities) if c not in frame.columns]
    if missing:
        raise InputError(f"rows to store lack column(s) {missing}", path=str(where))
    bad_splits = sorted(set(frame["split"]) - set(SPLITS))
    if bad_splits:
        raise InputError(f"unknown split value(s) {bad_splits}; expected {list(SPLITS)}", path=str(where))
    arrays = [
        pa.array(frame["dialog_id"].astype(str).tolist(), pa.string()),
        pa.array(frame["utt_id"].astype(str).tolist(), pa.string()),
        pa.array(frame["order"].astype("int64").tolist(), pa.int32()),
        pa.array(frame["speaker"].astype(str).tolist(), pa.string()),
        pa.array([None if pd.isna(v) else int(v) for v in frame["label"]], pa.int32()),
        pa.array(frame["split"].astype(str).tolist(), pa.string()),
    ]
    for modality in metadata.modalities:
        dim = int(metadata.dims[modality])
        matrix = _as_matrix(frame[modality], modality, dim, where)
        flat = pa.array(matrix.reshape(-1), pa.float32())
        arrays.append(pa.FixedSizeListArray.from_arrays(flat, dim))
    return pa.Table.from_arrays(arrays, schema=row_schema(metadata))


def _as_matrix(column: pd.Series, modality: str, dim: int, where: Location) -> np.ndarray:
    values = column.to_numpy()
    if values.dtype == object:
        try:
            matrix = np.stack([np.asarray(v, dtype=np.float32).reshape(-1) for v in values])
        except ValueError:
            lengths = sorted({len(np.asarray(v).reshape(-1)) for v in values})
            raise InputError(f"{modality} vectors have lengths {lengths}, expected {dim}", path=str(where)) from None
    else:
        matrix = np.asarray(values, dtype=np.float32).reshape(len(values), -1)
    if matrix.shape[1] != dim:
        raise InputError(f"{modality} vectors have length {matrix.shape[1]}, expected {dim}", path=str(where))
    if not np.isfinite(matrix).all():
        raise InputError(f"{modality} vectors contain NaN or infinite values", path=str(where))
    return matrix.astype(np.float32, copy=False)
