"""scan_corpus on a release that lives only in a real S3 server (SeaweedFS): the same manifest and
rejects as a local scan, media as s3:// URIs, one listing of the prefix."""

from __future__ import annotations

import pandas as pd
import pyarrow.fs as pafs
import pytest

from dgnode.cli import main
from dgnode.corpus.manifest import load_manifest
from dgnode.corpus.scan import scan_corpus
from dgnode.errors import DgnodeError, InputError

from .test_scan import _assert_frames_equal

PATH_COLUMNS = ("wav_path", "video_path", "wdseg_path")


@pytest.fixture(scope="module")
def s3_corpus(s3_server, media_corpus):
    """The mini corpus (with AVIs and traps) uploaded as ``s3://<bucket>/copy/...``; the AWS
    variables point at the server for the module's tests."""
    patch = pytest.MonkeyPatch()
    for name, value in s3_server.env().items():
        patch.setenv(name, value)
    patch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    patch.delenv("AWS_PROFILE", raising=False)
    bucket = s3_server.make_bucket()
    sizes = s3_server.upload(media_corpus.out_dir, bucket, "copy")
    yield {"uri": f"s3://{bucket}/copy", "bucket": bucket, "sizes": sizes, "local": str(media_corpus.out_dir.resolve())}
    patch.undo()


def _as_uri(value, local: str, uri: str):
    return value if not isinstance(value, str) else value.replace(local, uri, 1)


def test_s3_scan_gives_the_local_manifest_with_uris(s3_corpus, media_corpus):
    local = scan_corpus(media_corpus.out_dir)
    remote = scan_corpus(s3_corpus["uri"])
    expected = local.manifest.copy()
    for column in PATH_COLUMNS:
        expected[column] = [_as_uri(v, s3_corpus["local"], s3_corpus["uri"]) for v in expected[column]]
    _assert_frames_equal(remote.manifest, expected)
    assert remote.manifest["wav_path"].str.startswith(s3_corpus["uri"] + "/IEMOCAP_full_release/Session").all()
    assert remote.manifest["video_path"].str.endswith(".avi").all()
    # Every listed medium is an object of the bucket.
    keys = {f"s3://{s3_corpus['bucket']}/{key}" for key in s3_corpus["sizes"]}
    assert set(remote.manifest["wav_path"]) | set(remote.manifest["video_path"]) <= keys
    # The same skips and rejects (macOS junk, XX segments, comment lines), naming the objects.
    local_rejects = local.rejects.assign(path=[_as_uri(p, s3_corpus["local"], s3_corpus["uri"]) for p in local.rejects["path"]])
    pd.testing.assert_frame_equal(remote.rejects, local_rejects)
    assert remote.summary() == local.summary()
    assert remote.corpus_root == s3_corpus["uri"]
    assert sorted(remote.session_dirs) == sorted(local.session_dirs)


def test_s3_scan_lists_the_prefix_once_and_reads_only_text(s3_corpus, monkeypatch):
    from dgnode.storage import location as location_module

    calls = {"recursive_listings": 0, "other_listings": 0, "reads": []}
    real = location_module.s3_filesystem

    class Counting:
        def __init__(self, fs):
            self._fs = fs

        def get_file_info(self, what):
            if isinstance(what, pafs.FileSelector):
                calls["recursive_listings" if what.recursive else "other_listings"] += 1
            return self._fs.get_file_info(what)

        def open_input_stream(self, path):
            calls["reads"].append(path)
            return self._fs.open_input_stream(path)

        def __getattr__(self, name):
            return getattr(self._fs, name)

    monkeypatch.setattr(location_module, "s3_filesystem", lambda *a: Counting(real(*a)))
    result = scan_corpus(s3_corpus["uri"])
    assert calls["recursive_listings"] == 1
    assert calls["other_listings"] <= 1  # the bucket check before any work
    reads = calls["reads"]
    assert len(reads) == len(set(reads))
    assert {r.rsplit(".", 1)[-1] for r in reads} == {"txt", "wdseg"}  # never a wav or an avi
    dialogues = result.manifest["dialog_id"].nunique()
    assert sum(r.endswith(".txt") for r in reads) == 2 * dialogues
    # Each alignment once (read ahead: also those of utterances the scan then drops).
    wdseg = {k for k in s3_corpus["sizes"] if k.endswith(".wdseg") and "__MACOSX" not in k}
    assert {r.split("/", 1)[1] for r in reads if r.endswith(".wdseg")} == wdseg
    assert len(wdseg) > result.manifest["wdseg_path"].notna().sum()


def test_cli_scans_an_s3_corpus(s3_corpus, tmp_path, capsys):
    assert main(["corpus", "scan", s3_corpus["uri"], "--out", str(tmp_path / "scan"), "--json"]) == 0
    manifest = load_manifest(tmp_path / "scan")
    assert manifest.attrs["corpus_root"] == s3_corpus["uri"]
    assert manifest["wav_path"].str.startswith("s3://").all()
    # An extraction's view of it keeps the URIs (a relative path would be joined to the manifest's folder).
    media = load_manifest(tmp_path / "scan", ["audio", "vision"])
    assert media["video_path"].str.startswith(s3_corpus["uri"]).all()


def test_s3_only_traps_and_bad_roots(s3_server, s3_corpus):
    client, bucket = s3_server.client(), s3_corpus["bucket"]
    # An object named like a session folder beside the folder (possible in S3 only), and a
    # "directory marker" object of an empty folder: neither changes the manifest.
    client.put_object(Bucket=bucket, Key="odd/IEMOCAP_full_release/Session1", Body=b"x")
    client.put_object(Bucket=bucket, Key="odd/IEMOCAP_full_release/empty/", Body=b"")
    for key in [k for k in s3_corpus["sizes"] if "/Session1/" in k and "/sentences/wav/" in k][:3]:
        client.copy_object(Bucket=bucket, Key=key.replace("copy/", "odd/", 1), CopySource={"Bucket": bucket, "Key": key})
    for key in [k for k in s3_corpus["sizes"] if "/Session1/dialog/" in k and k.endswith(".txt")]:
        client.copy_object(Bucket=bucket, Key=key.replace("copy/", "odd/", 1), CopySource={"Bucket": bucket, "Key": key})
    result = scan_corpus(f"s3://{bucket}/odd")
    assert set(result.manifest["session"]) == {1}
    assert "missing-wav" in set(result.rejects["reason"])  # only three wavs were copied
    with pytest.raises(InputError, match=rf"^s3://{bucket}/nothing: corpus root is not a directory: no object"):
        scan_corpus(f"s3://{bucket}/nothing")
    with pytest.raises(InputError, match="s3://no-such-bucket-dgnode/x: .*bucket does not exist"):
        scan_corpus("s3://no-such-bucket-dgnode/x")
    with pytest.raises(DgnodeError, match=rf"^s3://{bucket}/copy: .*refused the credentials"):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
            scan_corpus(f"s3://{bucket}/copy")
