"""The tracking server as cluster.yaml starts it (mlflow/server.sh): metadata in SQLite beside it,
artifacts in a real S3 server (SeaweedFS), served through the server, so a client holding no S3
credentials at all logs a run and registers a model whose files are objects in the bucket; no
credential reaches a param or a tag."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.seaweed import ACCESS_KEY, SECRET_KEY

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

_AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                  "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "MLFLOW_S3_ENDPOINT_URL")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3_tracking(s3_server, tmp_path_factory):
    """``(url, bucket)`` of an MLflow server whose artifacts go to ``s3://bucket/mlflow``; the
    server alone holds the S3 variables. Stopped (its process group, by PID) at the end."""
    from tests.tuning.server_process import kill_server, start_server

    bucket, port = s3_server.make_bucket(), _free_port()
    pid = start_server(tmp_path_factory.mktemp("mlflow_s3"), port,
                       extra_env={**s3_server.env(), "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{bucket}/mlflow"})
    try:
        yield f"http://127.0.0.1:{port}", bucket
    finally:
        kill_server(pid, port)


@pytest.mark.slow
def test_a_client_without_s3_credentials_logs_and_registers_into_the_bucket(s3_tracking, s3_server, tiny_synthetic_store,
                                                                            tmp_path, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    from dgnode.features.dataset import load_conversations
    from dgnode.features.store import FeatureStore
    from dgnode.tracking.runs import ensure_experiment, provenance_tags, tracked_run
    from dgnode.training.best import evaluate_and_register
    from dgnode.training.config import load_train_config
    from dgnode.training.trainer import Trainer

    url, bucket = s3_tracking
    # Logging a model sets MLflow's process-wide URI and MLFLOW_TRACKING_URI (for subprocesses):
    # both go back to what they were when this test ends, and this module's server stops.
    from mlflow.tracking._tracking_service import utils as tracking_utils

    monkeypatch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    for name in _AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    # Nor a profile: whatever this client touches of S3 would fail.
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))

    store = str(tiny_synthetic_store)
    config = load_train_config(None, {"model.hidden": 16, "model.ode.method": "rk4", "model.ode.step_size": 0.5,
                                      "data.store": store})
    data = load_conversations(store)
    trainer = Trainer(config, data)
    state = trainer.model_state(valid=trainer.evaluate("valid", keep_representations=False).summary(), best_epoch=0)
    experiment = f"s3-{uuid.uuid4().hex[:6]}"
    experiment_id = ensure_experiment(url, experiment)
    tags = provenance_tags(FeatureStore.open(store).fingerprint(), store)
    with tracked_run(url, experiment_id, run_name="to-s3", tags=tags) as run:
        run.log_config(config)
        best = evaluate_and_register(config, data, state, run, experiment)

    client = MlflowClient(url)
    stored = client.get_run(run.run_id)
    assert stored.info.status == "FINISHED" and best.model_version == "1"
    # Artifacts are proxied: the client addresses the server, never the bucket.
    assert client.get_experiment(experiment_id).artifact_location.startswith("mlflow-artifacts:")
    keys = s3_server.keys(bucket, "mlflow/")
    assert [k for k in keys if k.endswith(f"/{run.run_id}/artifacts/evaluation/test_report.json")], keys
    model_files = {k.rsplit("/artifacts/", 1)[-1] for k in keys if "/models/" in k}
    assert {"MLmodel", "run/best.pt", "run/config.yaml", "run/model.json"} <= model_files, model_files
    # The registered model comes back through the server, byte for byte what the bucket holds.
    directory = Path(mlflow.artifacts.download_artifacts(f"models:/{experiment}/1", dst_path=str(tmp_path / "model"),
                                                         tracking_uri=url))
    (best_key,) = [k for k in keys if "/models/" in k and k.endswith("/artifacts/run/best.pt")]
    s3 = s3_server.client()
    assert (directory / "artifacts" / "run" / "best.pt").read_bytes() == s3.get_object(Bucket=bucket, Key=best_key)["Body"].read()

    # No credential in any param or tag of the run, nor in any object the server stored.
    for value in [*stored.data.params.values(), *stored.data.tags.values()]:
        assert SECRET_KEY not in value and ACCESS_KEY not in value
    assert s3_server.keys_holding(bucket, "mlflow/", SECRET_KEY, ACCESS_KEY) == []


def test_server_script_refuses_every_interface(repo_root, tmp_path):
    env = {**os.environ, "MLFLOW_SERVER_DIR": str(tmp_path), "MLFLOW_PORT": str(_free_port()),
           "MLFLOW_BIN": str(Path(sys.executable).with_name("mlflow"))}
    for host in ("0.0.0.0", "::"):
        result = subprocess.run([str(repo_root / "mlflow" / "server.sh")], env={**env, "MLFLOW_HOST": host},
                                capture_output=True, text=True)
        assert result.returncode == 2 and not (tmp_path / "server.pid").exists()
        assert result.stderr.strip() == (f"mlflow/server.sh: error: MLFLOW_HOST='{host}' binds every interface, public "
                                         "ones included; bind 127.0.0.1 (reach it through SSH port forwarding) or the "
                                         "node's private address")
