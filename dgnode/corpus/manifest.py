"""The utterance manifest and the rejects table: schemas, writing, validated loading.

``manifest.parquet`` has one row per valid utterance of the corpus, **labelled or not**: an
utterance whose code the label scheme excludes (``xxx``, ``sur``, ... under ``merc6``) keeps a
row with a null ``label``, so extraction and streaming can still embed it. Filter on
``label.notna()`` for training. ``order`` is the utterance's position in its dialogue after
sorting all its manifest rows by start time (ties: end time, then id); it has gaps once rows are
filtered, so sort by it rather than index with it.

Columns (:data:`MANIFEST_SCHEMA`): ``dialog_id``, ``utt_id``, ``session`` (1-5), ``speaker``
(``Ses01.F``), ``speaker_side`` (``left``/``right`` half of the dialogue video), ``start_s``,
``end_s``, ``order``, ``label_code`` (raw code), ``label`` (class index, nullable),
``majority_category`` (raters' majority, nullable), ``text`` (noise tags kept), ``wav_path``,
``video_path`` (nullable: the release may lack the avi), ``wdseg_path`` (nullable), ``words``
(list of ``{word, start_s, end_s}``, empty without alignment), ``split``. Paths are absolute.
The Parquet metadata holds ``label_names`` (JSON list), ``label_scheme`` and ``corpus_root``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dgnode.corpus.rejects import REJECT_COLUMNS
from dgnode.errors import InputError

MANIFEST_FILE = "manifest.parquet"
REJECTS_FILE = "rejects.parquet"

WORD_TYPE = pa.struct([("word", pa.string()), ("start_s", pa.float64()), ("end_s", pa.float64())])
MANIFEST_SCHEMA = pa.schema(
    [
        ("dialog_id", pa.string()),
        ("utt_id", pa.string()),
        ("session", pa.int32()),
        ("speaker", pa.string()),
        ("speaker_side", pa.string()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("order", pa.int32()),
        ("label_code", pa.string()),
        ("label", pa.int32()),
        ("majority_category", pa.string()),
        ("text", pa.string()),
        ("wav_path", pa.string()),
        ("video_path", pa.string()),
        ("wdseg_path", pa.string()),
        ("words", pa.list_(WORD_TYPE)),
        ("split", pa.string()),
    ]
)
MANIFEST_COLUMNS = tuple(MANIFEST_SCHEMA.names)
NULLABLE_COLUMNS = frozenset({"label", "majority_category", "video_path", "wdseg_path"})
REJECTS_SCHEMA = pa.schema(
    [("path", pa.string()), ("line", pa.int32()), ("utt_id", pa.string()), ("reason", pa.string()), ("detail", pa.string())]
)
assert tuple(REJECTS_SCHEMA.names) == REJECT_COLUMNS


def _to_frame(table: pa.Table, nullable_ints: tuple[str, ...]) -> pd.DataFrame:
    frame = table.to_pandas()
    for name in nullable_ints:
        frame[name] = frame[name].astype("Int32")
    if "words" in frame.columns:
        # Arrow gives numpy arrays of dicts; plain lists compare and print as users expect.
        frame["words"] = [list(words) for words in frame["words"]]
    return frame


def manifest_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Manifest rows (dicts with :data:`MANIFEST_COLUMNS`) as a DataFrame with the manifest dtypes."""
    return _to_frame(pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), ("label",))


def rejects_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return _to_frame(pa.Table.from_pylist(rows, schema=REJECTS_SCHEMA), ("line",))


def _table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    missing = [name for name in schema.names if name not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks column(s) {', '.join(missing)}; expected {', '.join(schema.names)}")
    return pa.Table.from_pandas(frame[list(schema.names)], schema=schema, preserve_index=False)


def write_manifest(frame: pd.DataFrame, path: str | Path, metadata: dict[str, Any]) -> None:
    """Write ``frame`` with the manifest schema and ``metadata`` (values JSON-encoded)."""
    table = _table(frame, MANIFEST_SCHEMA)
    encoded = {key.encode(): json.dumps(value).encode() for key, value in metadata.items()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **encoded})
    pq.write_table(table, path)


def write_rejects(frame: pd.DataFrame, path: str | Path) -> None:
    pq.write_table(_table(frame, REJECTS_SCHEMA), path)


def load_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest, check its columns and types; ``frame.attrs`` holds its metadata.

    ``path`` is the Parquet file or the scan output directory that contains it. Raises
    :class:`~dgnode.errors.InputError` naming the file and what was expected.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_FILE
    if not path.exists():
        raise InputError("manifest not found (expected the manifest.parquet written by 'dgnode corpus scan')", str(path))
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise InputError(f"not a readable Parquet file: {error}", str(path)) from None
    missing = [name for name in MANIFEST_COLUMNS if name not in table.schema.names]
    if missing:
        raise InputError(
            f"not a corpus manifest: missing column(s) {', '.join(missing)}; expected {', '.join(MANIFEST_COLUMNS)}",
            str(path),
        )
    for field in MANIFEST_SCHEMA:
        actual = table.schema.field(field.name).type
        if not actual.equals(field.type) and not (pa.types.is_string(field.type) and pa.types.is_large_string(actual)):
            raise InputError(f"column {field.name} has type {actual}, expected {field.type}", str(path))
    for name in MANIFEST_COLUMNS:
        if name not in NULLABLE_COLUMNS and table.column(name).null_count:
            raise InputError(f"column {name} has {table.column(name).null_count} null value(s); it may not be null",
                             str(path))
    frame = _to_frame(table.select(list(MANIFEST_COLUMNS) + [n for n in table.schema.names if n not in MANIFEST_COLUMNS]),
                      ("label",))
    raw = table.schema.metadata or {}
    frame.attrs = {key.decode(): json.loads(value) for key, value in raw.items() if not key.startswith(b"pandas")
                   and not key.startswith(b"ARROW")}
    if "label_names" not in frame.attrs:
        raise InputError("manifest metadata has no label_names", str(path))
    return frame


def load_rejects(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if path.is_dir():
        path = path / REJECTS_FILE
    if not path.exists():
        raise InputError("rejects table not found", str(path))
    return _to_frame(pq.read_table(path), ("line",))
