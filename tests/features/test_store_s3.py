"""A feature store in S3 keeps the local promises without a rename: a part is listed only once
completely written (a failed or cut-off upload leaves nothing), a reader never sees part of a
part, bad locations are one line naming the URI before any work, and no credential reaches a
store's objects or a run's MLflow params. Concurrent writers: test_store_writers.py (parametrised
over local and s3); the lock: test_lock_s3.py."""

from __future__ import annotations

import http.client
import socket
import threading
import urllib.parse

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dgnode.cli import main
from dgnode.features.store import FeatureStore, StoreMetadata
from dgnode.storage import resolve
from tests.features.test_store_writers import DIMS, rows
from tests.seaweed import ACCESS_KEY, SECRET_KEY


@pytest.fixture
def store(s3_uri) -> FeatureStore:
    return FeatureStore.create(f"{s3_uri}/store", StoreMetadata(model="m", dims=DIMS, label_names=["a", "b"]))


def objects(server, location) -> list[str]:
    bucket, _, prefix = location.path.partition("/")
    return [key[len(prefix) + 1:] for key in server.keys(bucket, prefix + "/")]


# -- a part counts only when completely written ----------------------------------------------------

def test_a_part_whose_upload_fails_is_never_listed(store, s3_server, monkeypatch):
    store.append(rows(["u0"]))
    real = pq.write_table

    def dies_half_way(table, sink, **kwargs):
        whole = pa.BufferOutputStream()
        real(table, whole, **kwargs)
        data = whole.getvalue().to_pybytes()
        sink.write(data[: len(data) // 2])
        raise OSError("connection reset by peer")

    with monkeypatch.context() as patched, pytest.raises(OSError, match="connection reset"):
        patched.setattr(pq, "write_table", dies_half_way)
        store.append(rows(["u1", "u2"]))
    assert [name for name in objects(s3_server, store.root) if name.startswith("part-")] == \
           [p.name for p in store.part_paths()] and len(store.part_paths()) == 1
    rerun = FeatureStore.open(store.root)  # checks every listed part: none is half written
    assert rerun.stored_utt_ids() == {"u0"}
    assert rerun.append(rows(["u0", "u1", "u2"])) == 2 and len(FeatureStore.open(store.root)) == 3


def _signed_put(server, bucket: str, key: str, body: bytes, sent: int) -> int | None:
    """PUT ``body`` signed like any S3 client, but send only its first ``sent`` bytes and drop the
    connection (a writer killed mid-upload); the HTTP status when the whole body was sent."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"{server.endpoint}/{bucket}/{key}"
    request = AWSRequest(method="PUT", url=url, data=body, headers={"Content-Length": str(len(body))})
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1").add_auth(request)
    endpoint = urllib.parse.urlsplit(server.endpoint)
    connection = http.client.HTTPConnection(endpoint.hostname, endpoint.port, timeout=10)
    try:
        connection.putrequest("PUT", f"/{bucket}/{key}", skip_accept_encoding=True)
        for name, value in request.headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        connection.send(body[:sent])
        if sent == len(body):
            return connection.getresponse().status
        connection.sock.shutdown(socket.SHUT_RDWR)
        return None
    finally:
        connection.close()


def test_an_upload_cut_off_mid_body_is_never_listed(store, s3_server):
    """What a writer killed during its PUT leaves: the server stores nothing, so nothing is listed."""
    store.append(rows(["u0"]))
    body = store.part_paths()[0].read_bytes()  # a valid part, as a writer would upload it
    bucket, _, prefix = store.root.path.partition("/")
    assert _signed_put(s3_server, bucket, f"{prefix}/part-99999999999999-cut.parquet", body, len(body) // 2) is None
    assert [p.name for p in FeatureStore.open(store.root).part_paths()] == [store.part_paths()[0].name]
    # The same request sent whole is stored: the cut, not the signing, kept the part out.
    assert _signed_put(s3_server, bucket, f"{prefix}/part-99999999999999-whole.parquet", body, len(body)) == 200
    assert len(FeatureStore.open(store.root).part_paths()) == 2


def test_a_reader_never_sees_part_of_a_part(s3_uri):
    """Readers take no lock: while a writer commits 16 parts of 64-float vectors, every load
    reads whole parts only, with exactly the values written."""
    dims = {"text": 64}
    store = FeatureStore.create(f"{s3_uri}/wide", StoreMetadata(model="m", dims=dims, label_names=["a"]))

    def batch(start: int) -> pd.DataFrame:
        ids = range(start, start + 8)
        return pd.DataFrame({"dialog_id": "d", "utt_id": [f"u{i:03d}" for i in ids], "order": list(ids),
                             "speaker": "A", "label": 0, "split": "train",
                             "text": [np.full(64, i, np.float32) for i in ids]})

    failures: list[BaseException] = []

    def write() -> None:
        try:
            for start in range(0, 128, 8):
                store.append(batch(start))
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            failures.append(error)

    writer = threading.Thread(target=write)
    writer.start()
    seen = []
    while writer.is_alive() or not seen or seen[-1] < 128:
        reader = FeatureStore.open(store.root)
        if reader.part_paths():
            loaded = reader.load()
            orders = loaded.frame["order"].to_numpy()
            assert len(orders) % 8 == 0 and loaded.duplicates == 0
            np.testing.assert_array_equal(loaded.vectors["text"], np.repeat(orders[:, None], 64, 1).astype(np.float32))
            seen.append(len(orders))
        if not writer.is_alive() and failures:
            break
    writer.join()
    assert not failures and seen == sorted(seen) and seen[-1] == 128 and len(seen) > 1


# -- bad locations: one line naming the URI, before any work --------------------------------------

def _cli(argv: list[str], capsys) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.err + captured.out


@pytest.fixture
def commands(tmp_path, iemocap_structure_path):
    """Every command that takes a store or manifest location, as ``argv(location)``: the location
    is the store, or for ``extract-manifest`` the manifest, for ``scan`` the output."""
    from tests.conftest import write_tiny_structure

    structure = write_tiny_structure(iemocap_structure_path, tmp_path / "structure.json", {"train": 1})
    manifest = tmp_path / "manifest.parquet"
    pq.write_table(pa.Table.from_pylist([{"dialog_id": "d", "utt_id": "u0", "order": 0, "speaker": "A", "label": 0,
                                          "split": "train", "text": "Hi."}]), manifest)
    extract = ["--engine", "process", "--model", "tiny", "--modalities", "[text]", "--progress", "false"]
    return {
        "features info": lambda where: ["features", "info", "--store", where],
        "features synth": lambda where: ["features", "synth", "--structure", structure, "--store", where,
                                         "--dims", "{text: 4}"],
        "train": lambda where: ["train", "--data.store", where, "--out", tmp_path / "run"],
        "tune": lambda where: ["tune", "--data.store", where, "--space", "configs/search_space_demo.yaml",
                               "--out", tmp_path / "search", "--tracking_uri", f"sqlite:///{tmp_path}/mlflow.db"],
        "extract": lambda where: ["extract", "--manifest", manifest, "--store", where, *extract],
        "extract-manifest": lambda where: ["extract", "--manifest", where, "--store", tmp_path / "store", *extract],
        "scan": lambda where: ["corpus", "scan", tmp_path / "no-corpus-here", "--out", where],
    }


def _one_line(code: int, output: str, where: str, expected: str, exit_code: int = 2) -> None:
    assert (code, output.count("\n")) == (exit_code, 1), output
    assert output.startswith(f"dgnode: error: {where}: ") and expected in output, output
    assert SECRET_KEY not in output


@pytest.mark.parametrize("command", ["features info", "features synth", "train", "tune", "extract", "extract-manifest",
                                     "scan"])
def test_every_command_names_a_missing_bucket_before_any_work(command, commands, s3_uri, tmp_path, capsys):
    where = "s3://no-such-bucket-dgnode/x"
    code, output = _cli(commands[command](where), capsys)
    _one_line(code, output, where, "the bucket does not exist")
    assert not (tmp_path / "run").exists() and not (tmp_path / "search").exists() and not (tmp_path / "store").exists()


@pytest.mark.parametrize("problem", ["wrong credentials", "unreachable endpoint"])
def test_refused_credentials_and_an_unreachable_endpoint_are_one_line(problem, commands, s3_uri, monkeypatch, capsys):
    if problem == "wrong credentials":
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-0123")
        expected, exit_code = "the S3 server refused the credentials", 2
    else:
        with socket.socket() as probe:  # a closed loopback port: nothing listens there
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        expected, exit_code = f"cannot reach the S3 endpoint http://127.0.0.1:{port}", 1
    for command in ("features info", "extract-manifest"):  # the store's check and the manifest's
        where = f"{s3_uri}/{command.replace(' ', '-')}"
        code, output = _cli(commands[command](where), capsys)
        _one_line(code, output, where, expected, exit_code)
        assert "not-the-secret-0123" not in output


@pytest.mark.parametrize("command", ["features info", "train", "tune"])
def test_reading_commands_refuse_a_location_that_is_not_a_store(command, commands, s3_uri, capsys):
    other = resolve(f"{s3_uri}/scan")
    (other / "manifest.parquet").write_bytes(b"PAR1 something else")
    for where in (other.uri, f"{s3_uri}/nothing-here"):
        code, output = _cli(commands[command](where), capsys)
        _one_line(code, output, where, "not a feature store: metadata.json is missing")


def test_no_credential_reaches_the_stores_objects_or_the_runs_params(s3_uri, s3_server, mlflow_server, commands,
                                                                     capsys):
    from mlflow import MlflowClient

    from dgnode.tracking.runs import ensure_experiment, provenance_tags, tracked_run
    from dgnode.training.config import load_train_config

    where = f"{s3_uri}/synth"
    code, output = _cli(commands["features synth"](where), capsys)
    assert code == 0 and SECRET_KEY not in output and ACCESS_KEY not in output
    store = FeatureStore.open(where)
    bucket, _, prefix = store.root.path.partition("/")
    keys = s3_server.keys(bucket, prefix + "/")
    assert f"{prefix}/metadata.json" in keys and len(keys) > 1
    for key in keys:
        body = s3_server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        assert SECRET_KEY.encode() not in body and ACCESS_KEY.encode() not in body, key
    # What a training or tuning run records about its store (train_and_track, run_search).
    config = load_train_config(None, {"data.store": store.root.uri})
    with tracked_run(mlflow_server, ensure_experiment(mlflow_server, "s3-store-credentials"),
                     tags=provenance_tags(store.fingerprint(), store.root.uri)) as run:
        run.log_config(config)
    recorded = MlflowClient(mlflow_server).get_run(run.run_id).data
    assert recorded.params["data.store"] == store.root.uri
    logged = repr((recorded.params, recorded.tags))
    assert SECRET_KEY not in logged and ACCESS_KEY not in logged
