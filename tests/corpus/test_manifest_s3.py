"""The manifest and rejects tables written to and read from S3 (``corpus scan --out s3://...``,
``extract --manifest s3://...``) exactly as from a folder; relative media paths of a manifest in
S3 are taken relative to its prefix."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from dgnode.cli import main
from dgnode.corpus.manifest import MANIFEST_FILE, load_manifest, load_rejects
from dgnode.storage import resolve


def test_a_scan_written_to_s3_reads_back_as_written_locally(text_corpus, scratch_dir, s3_uri, s3_server, capsys):
    local = scratch_dir / "scan"
    assert main(["corpus", "scan", str(text_corpus.out_dir), "--out", str(local)]) == 0
    assert main(["corpus", "scan", str(text_corpus.out_dir), "--out", f"{s3_uri}/scan"]) == 0
    assert f"-> {s3_uri}/scan/{MANIFEST_FILE}" in " ".join(capsys.readouterr().out.split())
    bucket = s3_uri.split("/")[2]
    assert s3_server.keys(bucket, "t/scan/") == ["t/scan/manifest.parquet", "t/scan/rejects.parquet"]
    remote = load_manifest(f"{s3_uri}/scan")
    assert remote.equals(load_manifest(local)) and remote.attrs == load_manifest(local).attrs
    assert load_manifest(f"{s3_uri}/scan/{MANIFEST_FILE}", ["text", "audio"]).equals(load_manifest(local, ["text", "audio"]))
    assert load_rejects(f"{s3_uri}/scan").equals(load_rejects(local))


def test_relative_media_paths_of_a_manifest_in_s3_are_taken_relative_to_it(s3_uri):
    row = {"dialog_id": "d", "utt_id": "u0", "order": 0, "speaker": "A", "label": 1, "split": "train",
           "wav_path": "wav/../audio/u0.wav", "video_path": "s3://media/d.avi", "start_s": 0.0, "end_s": 1.0}
    table = pa.Table.from_pylist([row, {**row, "utt_id": "u1", "order": 1, "wav_path": "/data/u1.wav",
                                        "video_path": None}])
    table = table.replace_schema_metadata({b"label_names": json.dumps(["a", "b"]).encode()})
    resolve(f"{s3_uri}/hand/m.parquet").write_with(lambda sink: pq.write_table(table, sink))
    frame = load_manifest(f"{s3_uri}/hand/m.parquet", ["audio"])
    assert frame["wav_path"].tolist() == [f"{s3_uri}/hand/audio/u0.wav", "/data/u1.wav"]
    assert frame["video_path"].iloc[0] == "s3://media/d.avi" and frame["video_path"].isna().tolist() == [False, True]
    assert frame.attrs["label_names"] == ["a", "b"]


def test_a_scan_into_a_missing_bucket_fails_before_scanning(scratch_dir, s3_uri, capsys):
    where = "s3://no-such-bucket-dgnode/scan"
    # No corpus there either: the output is checked first, so the bucket is what is named.
    assert main(["corpus", "scan", str(scratch_dir / "no-corpus"), "--out", where]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dgnode: error: {where}: cannot open the bucket: the bucket does not exist") and err.count("\n") == 1
