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
(list of ``{word, start_s, end_s}``, empty without alignment), ``split``. Paths are absolute:
local paths, or ``s3://`` URIs when the corpus was scanned from object storage (extraction fetches
those media where it runs: :mod:`dgnode.media.fetch`).
The Parquet metadata holds ``label_names`` (JSON list), ``label_scheme``, ``corpus_root`` and
``dataset`` (``iemocap``/``meld``; a manifest written before MELD support has none).

A MELD manifest (:mod:`dgnode.corpus.meld_scan`) fills the same columns: ``session`` is the
Friends season, ``speaker`` the character's name, ``speaker_side`` is ``full`` (one clip per
utterance, no split screen: the whole frame is the speaker's view), ``start_s``/``end_s`` are
seconds inside the utterance's own clip (``video_path``), ``wav_path`` is null (the audio is the
clip's track), ``label_code`` is the raw value of the CSV column the scheme reads, and
``majority_category``, ``wdseg_path`` are null, ``words`` empty.

Both tables are read and written at a local path or an ``s3://`` URI (:mod:`dgnode.storage`):
each write is atomic (a reader sees the old file or the new one), and reading an ``s3://``
manifest checks its bucket first (unreachable endpoint, refused credentials, missing bucket: one
error naming the URI).
"""

from __future__ import annotations

import json
import math
import posixpath
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dgnode.corpus.rejects import REJECT_COLUMNS
from dgnode.corpus.splits import SPLITS
from dgnode.errors import InputError
from dgnode.storage import Location, resolve

__all__ = [
    "KEY_COLUMNS", "MANIFEST_COLUMNS", "MANIFEST_FILE", "MANIFEST_SCHEMA", "MEDIA_COLUMNS", "NULLABLE_COLUMNS",
    "REJECTS_FILE", "REJECTS_SCHEMA", "SPEAKER_SIDES", "WORD_TYPE", "load_manifest", "load_rejects", "manifest_frame",
    "rejects_frame", "scan_outputs", "write_manifest", "write_rejects",
]

# What names an utterance and its place in a conversation, from the manifest to every stage after
# it (the feature store keeps these columns with every vector).
KEY_COLUMNS = ("dialog_id", "utt_id", "order", "speaker", "label", "split")
MANIFEST_FILE = "manifest.parquet"
REJECTS_FILE = "rejects.parquet"
# The columns holding each modality's media (beside the feature store's key columns): what an
# extraction of that modality reads.
MEDIA_COLUMNS = {
    "text": ("text",),
    "audio": ("wav_path", "video_path", "start_s", "end_s"),
    "vision": ("video_path", "start_s", "end_s", "speaker_side"),
}

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
NULLABLE_COLUMNS = frozenset({"label", "majority_category", "wav_path", "video_path", "wdseg_path"})
# ``left``/``right``: the speaker's half of a split-screen video (IEMOCAP); ``full``: the whole
# frame (MELD's per-utterance clips).
SPEAKER_SIDES = ("left", "right", "full")
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


def scan_outputs(out_dir: str | Path | Location) -> dict[str, Location]:
    """Where a scan into ``out_dir`` writes its tables (``manifest``, ``rejects``), the bucket of an
    ``s3://`` one checked first: call it before scanning to fail before any work."""
    out = resolve(out_dir)
    out.check_bucket()
    return {"manifest": out / MANIFEST_FILE, "rejects": out / REJECTS_FILE}


def write_manifest(frame: pd.DataFrame, path: str | Path | Location, metadata: dict[str, Any]) -> None:
    """Write ``frame`` with the manifest schema and ``metadata`` (values JSON-encoded)."""
    table = _table(frame, MANIFEST_SCHEMA)
    encoded = {key.encode(): json.dumps(value).encode() for key, value in metadata.items()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **encoded})
    # Atomic: a full disk must not leave a truncated manifest where a good one was.
    resolve(path).write_with(lambda sink: pq.write_table(table, sink))


def write_rejects(frame: pd.DataFrame, path: str | Path | Location) -> None:
    table = _table(frame, REJECTS_SCHEMA)
    resolve(path).write_with(lambda sink: pq.write_table(table, sink))


def load_manifest(path: str | Path | Location, modalities: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a manifest and check it; ``frame.attrs`` holds its metadata, ``label_names`` always.

    ``path`` is the Parquet file or the scan output directory that contains it, local or
    ``s3://``. Without
    ``modalities`` the file must be a whole corpus manifest (every column of
    :data:`MANIFEST_SCHEMA` with its type, ``label_names`` in the metadata). With ``modalities``
    (a subset of text, audio, vision: what an extraction embeds) any Parquet file holding the
    feature store's key columns and the media columns of those modalities (:data:`MEDIA_COLUMNS`)
    will do, as a hand-made manifest: only those columns are returned, sorted by dialogue and
    order, relative media paths are taken relative to the manifest's directory (``s3://`` there
    for a manifest in S3; paths with a scheme or absolute ones are kept as they are), and label names
    missing from the metadata become ``class_0 .. class_K``. Raises
    :class:`~dgnode.errors.InputError` naming the file and what was expected.
    """
    path = _table_location(path, MANIFEST_FILE)
    if not path.is_file():
        raise InputError("manifest not found (expected the manifest.parquet written by 'dgnode corpus scan')", str(path))
    try:
        with path.open_input() as handle:
            table = pq.read_table(handle)
    except (pa.ArrowInvalid, OSError) as error:
        raise InputError(f"not a readable Parquet file: {error}", str(path)) from None
    attrs = _metadata(table)
    if modalities is None:
        frame = _whole_manifest(table, path)
        if "label_names" not in attrs:
            raise InputError("manifest metadata has no label_names", str(path))
    else:
        frame = _media_manifest(table, path, modalities)
        if not _is_name_list(attrs.get("label_names")):
            labels = frame["label"].dropna()
            attrs["label_names"] = [f"class_{i}" for i in range(int(labels.max()) + 1)] if len(labels) else []
    frame.attrs = attrs
    return frame


def _metadata(table: pa.Table) -> dict[str, Any]:
    """The file's own metadata (JSON values; a hand-made file's other values kept as text)."""
    attrs: dict[str, Any] = {}
    for key, value in (table.schema.metadata or {}).items():
        if key.startswith(b"pandas") or key.startswith(b"ARROW"):
            continue
        try:
            attrs[key.decode()] = json.loads(value)
        except (UnicodeDecodeError, ValueError):
            attrs[key.decode(errors="replace")] = value.decode(errors="replace")
    return attrs


def _table_location(path: str | Path | Location, default_name: str) -> Location:
    """The table's location: ``path``, or ``path/default_name`` when ``path`` is a folder; the
    bucket of an ``s3://`` one checked first."""
    location = resolve(path)
    location.check_bucket()
    return location / default_name if location.is_dir() else location


def _whole_manifest(table: pa.Table, path: Location) -> pd.DataFrame:
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
    return _to_frame(table.select(list(MANIFEST_COLUMNS) + [n for n in table.schema.names if n not in MANIFEST_COLUMNS]),
                     ("label",))


def _media_manifest(table: pa.Table, path: Location, modalities: Sequence[str]) -> pd.DataFrame:
    needed = list(dict.fromkeys([*KEY_COLUMNS, *(c for m in modalities for c in MEDIA_COLUMNS[m])]))
    missing = [c for c in needed if c not in table.schema.names]
    if missing:
        raise InputError(
            f"manifest lacks column(s) {', '.join(missing)} needed to extract {', '.join(modalities)}", str(path)
        )
    frame = table.select(needed).to_pandas()
    nulls = {c: int(frame[c].isna().sum()) for c in KEY_COLUMNS if c != "label"}
    nulls = {c: n for c, n in nulls.items() if n}
    if nulls:
        raise InputError(f"null values in required column(s): {nulls}", str(path))
    try:
        frame["label"] = frame["label"].astype("Int32")
    except (TypeError, ValueError):
        raise InputError("label must hold integer class indices or nulls", str(path)) from None
    duplicated = frame["utt_id"][frame["utt_id"].duplicated()].unique().tolist()
    if duplicated:
        raise InputError(f"manifest repeats utt_id(s) {duplicated[:5]}", str(path))
    bad_splits = sorted(set(frame["split"].astype(str)) - set(SPLITS))
    if bad_splits:
        raise InputError(f"split values must be one of {list(SPLITS)}, found {bad_splits}", str(path))
    for column in ("wav_path", "video_path"):
        if column in frame.columns:
            frame[column] = [_resolve(p, path.parent) for p in frame[column]]
    if "speaker_side" in frame.columns:
        bad_sides = sorted(set(frame["speaker_side"].dropna()) - set(SPEAKER_SIDES))
        if bad_sides:
            raise InputError(f"speaker_side must be one of {', '.join(SPEAKER_SIDES)}, found {bad_sides}", str(path))
    return frame.sort_values(["dialog_id", "order"], kind="stable").reset_index(drop=True)


def _resolve(value: Any, base: Location) -> str | None:
    """A media path of a hand-made manifest: a URI or an absolute path as it is, a relative one
    under ``base`` (the manifest's folder or, for a manifest in S3, its prefix)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    if "://" in text or posixpath.isabs(text):
        return text
    if base.is_remote:
        return base.join(posixpath.normpath(text)).uri
    return str(Path(base.path) / text)


def _is_name_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(n, str) for n in value)


def load_rejects(path: str | Path | Location) -> pd.DataFrame:
    path = _table_location(path, REJECTS_FILE)
    if not path.is_file():
        raise InputError("rejects table not found", str(path))
    with path.open_input() as handle:
        return _to_frame(pq.read_table(handle), ("line",))
