"""A store checks itself on open: every part against metadata.json, from Parquet footers only;
rows stored twice (by writers without the lock) are reported, not hidden. On the local disk and in S3."""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dgnode.command import run_command
from dgnode.errors import InputError
from dgnode.features.cli import COMMANDS
from dgnode.features.dataset import load_conversations
from dgnode.features.parts import read_part, write_part
from dgnode.features.store import FeatureStore
from dgnode.features.summary import describe_store

pytestmark = pytest.mark.parametrize("store_kind", ["local", "s3"])

DIALOGUES = [
    {"dialog_id": "d1", "split": "train", "speakers": ["A", "B", "A"], "labels": [0, 2, None]},
    {"dialog_id": "d2", "split": "test", "speakers": ["B", "A"], "labels": [1, 1]},
]


def edit_metadata(store: FeatureStore, **changes) -> None:
    path = store.root / "metadata.json"
    data = path.read_json()
    data.update(changes)
    path.write_text(json.dumps(data))


def expected_error(store: FeatureStore, problems: str) -> str:
    (part,) = store.part_paths()
    return (f"{part}: disagrees with {store.root / 'metadata.json'}: {problems}. The store's parts and "
            "metadata.json must match: restore metadata.json, or write the features into a new store")


@pytest.mark.parametrize("dim", [16, 33])
def test_edited_dims_are_refused_naming_the_part_not_reshaped(make_store, capsys, dim):
    store = make_store(DIALOGUES, dims={"text": 32, "audio": 3})
    edit_metadata(store, dims={"text": dim, "audio": 3})
    message = expected_error(store, f"text vectors have 32 floats, expected dims.text = {dim}")
    with pytest.raises(InputError) as raised:
        FeatureStore.open(store.root)
    assert str(raised.value) == message
    with pytest.raises(InputError, match=re.escape(message)):
        load_conversations(store.root)
    assert run_command(COMMANDS, ["features", "info", "--store", str(store.root)]) == 2
    assert capsys.readouterr().err == f"dgnode: error: {message}\n"


@pytest.mark.parametrize("changes, problems", [
    ({"label_names": ["a", "b"]}, "labels 0..2, expected 0..1 (2 label_names) or null"),
    ({"dims": {"text": 4}}, "a audio column, but dims lists only ['text']"),
    ({"dims": {"text": 4, "audio": 3, "vision": 5}}, "no vision column, but dims.vision = 5"),
])
def test_metadata_that_disagrees_with_the_parts_is_one_error(make_store, changes, problems):
    store = make_store(DIALOGUES)
    edit_metadata(store, **changes)
    with pytest.raises(InputError) as raised:
        FeatureStore.open(store.root)
    assert str(raised.value) == expected_error(store, problems)


def _rewrite_part(store: FeatureStore, change) -> None:
    (part,) = store.part_paths()
    write_part(change(read_part(part)), part)


def _cast(name: str, kind: pa.DataType):
    def change(table: pa.Table) -> pa.Table:
        index = table.schema.get_field_index(name)
        return table.set_column(index, pa.field(name, kind), table.column(name).cast(kind))
    return change


@pytest.mark.parametrize("change, problems", [
    (_cast("order", pa.int64()), "key column order is int64, expected int32"),
    (_cast("text", pa.list_(pa.float64(), 4)), "text holds vectors of 4 double, expected vectors of 4 float (dims.text = 4)"),
    (_cast("audio", pa.list_(pa.float32())), "audio holds variable-length lists of float, expected vectors of 3 float "
                                             "(dims.audio = 3)"),
    (lambda t: t.drop_columns(["speaker"]), "key column speaker is missing"),
    (lambda t: t.set_column(2, pa.field("order", pa.int32()), pa.array([0, 1, -3, 0, 1], pa.int32())),
     "order values down to -3, expected >= 0"),
    (lambda t: t.set_column(1, pa.field("utt_id", pa.string()), pa.array(["x", None, "y", "z", "w"])),
     "1 null utt_id value(s)"),
    (lambda t: t.set_column(5, pa.field("split", pa.string()), pa.array(["train"] * 3 + ["dev"] * 2)),
     "split values ['dev'], expected ['train', 'valid', 'test']"),
])
def test_parts_with_other_types_or_values_are_refused(make_store, change, problems):
    store = make_store(DIALOGUES)
    _rewrite_part(store, change)
    with pytest.raises(InputError) as raised:
        FeatureStore.open(store.root)
    assert str(raised.value) == expected_error(store, problems)


def test_labels_without_statistics_are_read_and_checked(make_store):
    store = make_store(DIALOGUES)
    (part,) = store.part_paths()
    part.write_with(lambda sink: pq.write_table(read_part(part), sink, write_statistics=False))
    FeatureStore.open(store.root)  # labels 0..2 fit three names
    edit_metadata(store, label_names=["a", "b"])
    with pytest.raises(InputError) as raised:
        FeatureStore.open(store.root)
    assert str(raised.value) == expected_error(store, "labels [2], expected 0..1 (2 label_names) or null")


def test_an_unreadable_part_is_named(make_store):
    store = make_store(DIALOGUES)
    (part,) = store.part_paths()
    part.write_bytes(part.read_bytes()[:40])
    with pytest.raises(InputError, match=rf"^{re.escape(str(part))}: unreadable part \(.*\); move it out of the store"):
        FeatureStore.open(store.root)


def test_checking_reads_footers_only(make_store, monkeypatch):
    store = make_store(DIALOGUES)
    for i in range(3):
        (store.root / f"part-copy{i}.parquet").write_bytes(store.part_paths()[0].read_bytes())

    def no_data(*args, **kwargs):
        raise AssertionError("the check read row data")

    monkeypatch.setattr(pq, "read_table", no_data)
    monkeypatch.setattr(pq.ParquetFile, "read", no_data)
    assert len(FeatureStore.open(store.root).part_paths()) == 4


def test_parts_added_after_open_are_checked_when_read(make_store):
    store = make_store(DIALOGUES)
    opened = FeatureStore.open(store.root)
    (part,) = store.part_paths()
    bad = store.root / "part-zzz.parquet"
    write_part(_cast("order", pa.int64())(read_part(part)), bad)
    with pytest.raises(InputError, match=rf"^{re.escape(str(bad))}: disagrees with .*key column order is int64"):
        opened.load()
    with pytest.raises(InputError, match="key column order is int64"):
        opened.stored_utt_ids()


def test_rows_stored_twice_are_reported_not_hidden(make_store, capsys):
    store = make_store(DIALOGUES)
    (part,) = store.part_paths()
    # What two writers without the lock left: the same rows in a second part.
    (store.root / "part-99999999999999-copy.parquet").write_bytes(part.read_bytes())
    loaded = FeatureStore.open(store.root).load()
    assert (len(loaded.frame), loaded.duplicates, len(store)) == (5, 5, 10)
    np.testing.assert_array_equal(loaded.vectors["text"], FeatureStore.open(store.root).load().vectors["text"])
    with pytest.warns(UserWarning, match=rf"^{re.escape(str(store.root))}: 5 stored row\(s\) repeat an utt_id; the first"):
        conversations = load_conversations(store.root)
    assert conversations.duplicates == 5 and sum(len(c) for c in conversations.conversations) == 5
    summary = describe_store(store.root)
    assert (summary.rows, summary.duplicates) == (5, 5)
    assert run_command(COMMANDS, ["features", "info", "--store", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"duplicate rows\s+│\s+5 \(rows repeating a stored utt_id, written without the store's lock;", out)
    assert re.search(r"│ rows\s+│\s+5\s+│", out)


def test_a_clean_store_reports_no_duplicates(make_store, capsys):
    store = make_store(DIALOGUES)
    assert FeatureStore.open(store.root).load().duplicates == 0
    assert run_command(COMMANDS, ["features", "info", "--store", str(store.root)]) == 0
    assert re.search(r"duplicate rows\s+│\s+0\s+│", capsys.readouterr().out)
