"""Reading a manifest for extraction (``load_manifest(path, modalities)``): required columns, label names,
clear errors."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dgnode.corpus.manifest import load_manifest
from dgnode.errors import InputError

ROW = {
    "dialog_id": "Ses01F_impro01", "utt_id": "Ses01F_impro01_F000", "order": 0, "speaker": "Ses01.F",
    "label": 2, "split": "train", "text": "Hi.", "wav_path": "wav/a.wav", "video_path": "/data/d.avi",
    "start_s": 1.0, "end_s": 2.0, "speaker_side": "left",
}


def read_manifest(path, modalities):
    frame = load_manifest(path, modalities)
    return frame, frame.attrs["label_names"]


def _write(path, rows, label_names=None):
    table = pa.Table.from_pylist(rows)
    if label_names is not None:
        table = table.replace_schema_metadata({b"label_names": json.dumps(label_names).encode()})
    pq.write_table(table, path)
    return path


def test_label_names_and_relative_paths(tmp_path):
    path = _write(tmp_path / "manifest.parquet", [ROW, {**ROW, "utt_id": "Ses01F_impro01_M001", "order": 1, "label": None}],
                  ["hap", "sad", "neu"])
    frame, names = read_manifest(tmp_path, ["text", "audio", "vision"])
    assert names == ["hap", "sad", "neu"]
    assert frame["wav_path"].tolist() == [str(tmp_path / "wav/a.wav")] * 2
    assert frame["video_path"].tolist() == ["/data/d.avi"] * 2
    assert frame["label"].tolist()[0] == 2 and frame["label"].isna().tolist() == [False, True]
    _, derived = read_manifest(_write(tmp_path / "plain.parquet", [ROW]), ["text"])
    assert derived == ["class_0", "class_1", "class_2"]


def test_bad_manifests_name_the_file_and_the_problem(tmp_path):
    text_only = {k: v for k, v in ROW.items() if k not in ("speaker_side", "video_path")}
    path = _write(tmp_path / "a.parquet", [text_only])
    assert read_manifest(path, ["text"])[0]["utt_id"].tolist() == [ROW["utt_id"]]
    with pytest.raises(InputError, match=rf"{path}: manifest lacks column\(s\) video_path, speaker_side needed to extract vision"):
        read_manifest(path, ["vision"])
    path = _write(tmp_path / "b.parquet", [ROW, ROW])
    with pytest.raises(InputError, match=rf"{path}: manifest repeats utt_id\(s\) \['Ses01F_impro01_F000'\]"):
        read_manifest(path, ["text"])
    path = _write(tmp_path / "c.parquet", [{**ROW, "split": "dev"}])
    with pytest.raises(InputError, match=r"split values must be one of \['train', 'valid', 'test'\], found \['dev'\]"):
        read_manifest(path, ["text"])
    path = _write(tmp_path / "d.parquet", [{**ROW, "speaker": None}])
    with pytest.raises(InputError, match=r"null values in required column\(s\): \{'speaker': 1\}"):
        read_manifest(path, ["text"])
    path = _write(tmp_path / "e.parquet", [{**ROW, "speaker_side": "middle"}])
    with pytest.raises(InputError, match=r"speaker_side must be one of left, right, full, found \['middle'\]"):
        read_manifest(path, ["vision"])
    (tmp_path / "f.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match=rf"{tmp_path / 'f.parquet'}: not a readable Parquet file"):
        read_manifest(tmp_path / "f.parquet", ["text"])
    with pytest.raises(InputError, match=rf"{tmp_path / 'nothing'}: manifest not found"):
        read_manifest(tmp_path / "nothing", ["text"])
