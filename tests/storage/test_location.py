"""Locations on the local disk and in a real S3 server (SeaweedFS), through one API."""

from __future__ import annotations

import socket

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dgnode.errors import DgnodeError, EnvironmentFault, InputError
from dgnode.storage import create_exclusive, delete_if_unchanged, read_versioned, resolve


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    if request.param == "local":
        return resolve(tmp_path / "root")
    return resolve(request.getfixturevalue("s3_uri"))


def test_write_read_list_delete(root):
    (root / "a.json").write_json({"x": float("nan"), "y": 1})
    (root / "b.txt").write_text("héllo")
    (root / ".hidden").write_bytes(b"1")
    (root / "sub" / "c.bin").write_bytes(b"\x00\x01")
    assert (root / "a.json").read_json() == {"x": None, "y": 1}
    assert (root / "b.txt").read_text() == "héllo"
    assert [c.name for c in root.children()] == ["a.json", "b.txt"]
    assert [c.name for c in root.children(".*")] == [".hidden"]
    assert [c.name for c in root.children(kind="dir")] == ["sub"]
    assert (root / "sub").is_dir() and (root / "b.txt").is_file() and not (root / "nope").exists()
    assert (root / "sub" / "c.bin").size() == 2
    (root / "b.txt").delete()
    (root / "b.txt").delete()  # missing is fine
    assert not (root / "b.txt").exists()
    with pytest.raises(FileNotFoundError):
        (root / "b.txt").read_bytes()


def test_parquet_round_trip_and_download(root, tmp_path):
    table = pa.table({"utt_id": ["a", "b"], "v": [1.0, 2.0]})
    part = (root / "part-1.parquet").write_with(lambda f: pq.write_table(table, f))
    with part.open_input() as handle:
        assert pq.read_table(handle).equals(table)
        assert pq.ParquetFile(handle).metadata.num_rows == 2
    local = part.download(tmp_path / "copy" / "p.parquet")
    assert pq.read_table(local).equals(table)


def test_a_writer_that_raises_leaves_no_object(root):
    """pyarrow's S3 output stream publishes what was written when closed, also after an error:
    ``write_with`` must never let half an object appear under the final name."""
    (root / "keep.bin").write_bytes(b"old")

    def half(sink):  # a file object on S3, a temporary's path locally
        pq.write_table(pa.table({"utt_id": ["a"]}), sink)
        raise RuntimeError("the writer died before it was done")

    for name in ("new.parquet", "keep.bin"):
        with pytest.raises(RuntimeError):
            (root / name).write_with(half)
    assert [c.name for c in root.children("*")] == ["keep.bin"] and (root / "keep.bin").read_bytes() == b"old"


def test_exclusive_create_is_won_once(root):
    lock = root / ".lock"
    assert create_exclusive(lock, b"one")
    assert not create_exclusive(lock, b"two")
    held = read_versioned(lock)
    assert held is not None and held.data == b"one"
    (lock).write_bytes(b"replaced")
    assert not delete_if_unchanged(lock, held.version)  # someone replaced it: keep theirs
    now = read_versioned(lock)
    assert delete_if_unchanged(lock, now.version)
    assert read_versioned(lock) is None
    assert create_exclusive(lock, b"three")


def test_ray_storage_arguments(root):
    path, filesystem = root.ray_storage()
    if root.is_remote:
        assert not path.startswith("s3://") and filesystem is not None
    else:
        assert path == root.path and filesystem is None


def test_uri_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve("rel/dir").uri == str(tmp_path / "rel" / "dir")
    assert resolve(f"file://{tmp_path}").uri == str(tmp_path)
    with pytest.raises(InputError, match="gs://"):
        resolve("gs://bucket/x")
    with pytest.raises(InputError, match="name a bucket"):
        resolve("s3://")
    with pytest.raises(InputError) as caught:
        resolve("s3://AKIA123:topsecret@bucket/x")
    assert "topsecret" not in str(caught.value) and "AKIA123" not in str(caught.value)


def test_missing_bucket_is_one_line(s3_uri):
    location = resolve("s3://no-such-bucket-dgnode/store")
    with pytest.raises(InputError, match="bucket does not exist") as caught:
        location.check_bucket()
    assert "s3://no-such-bucket-dgnode/store" in str(caught.value)
    resolve(s3_uri).check_bucket()


def test_wrong_credentials_are_one_line(s3_server, s3_uri, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value")
    with pytest.raises(InputError, match="refused the credentials") as caught:
        resolve(s3_uri).check_bucket()
    assert s3_uri in str(caught.value) and "wrong-secret-value" not in str(caught.value)


def test_unreachable_endpoint_is_one_line(s3_uri, monkeypatch):
    with socket.socket() as probe:  # a closed loopback port: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(EnvironmentFault, match=f"cannot reach the S3 endpoint http://127.0.0.1:{port}") as caught:
        resolve(s3_uri).check_bucket()
    assert s3_uri in str(caught.value)


def test_bad_endpoint_variable(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "127.0.0.1:9")
    with pytest.raises(DgnodeError, match="AWS_ENDPOINT_URL"):
        resolve("s3://bucket/x")
