"""MLflow helpers against a real `mlflow server` (session fixture `mlflow_server`)."""

from __future__ import annotations

import http.server
import importlib.metadata
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from dgnode.tracking.provenance import git_commit, library_versions, provenance_tags
from dgnode.tracking.runs import EPOCH_METRICS, RunStatus, end_dangling_runs, ensure_experiment, tracked_run
from dgnode.tracking.server import TrackingUnavailableError, check_tracking_uri, resolve_tracking_uri

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _experiment(uri: str) -> str:
    return ensure_experiment(uri, f"test-{uuid.uuid4().hex[:8]}")


# -- URI resolution and reachability ---------------------------------------------------------
def test_resolve_tracking_uri_order_and_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(cwd=tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert resolve_tracking_uri(cwd=tmp_path) == "http://tracking:5000"
    assert resolve_tracking_uri("sqlite:///runs/x.db", cwd=tmp_path) == f"sqlite:///{tmp_path.resolve()}/runs/x.db"
    assert resolve_tracking_uri("sqlite:////abs/x.db", cwd=tmp_path) == "sqlite:////abs/x.db"
    assert resolve_tracking_uri("mlruns", cwd=tmp_path) == (tmp_path.resolve() / "mlruns").as_uri()
    assert resolve_tracking_uri("file:///abs/mlruns", cwd=tmp_path) == "file:///abs/mlruns"


def test_unreachable_server_fails_fast_with_clear_error():
    uri = f"http://127.0.0.1:{_free_port()}"
    start = time.monotonic()
    with pytest.raises(TrackingUnavailableError) as error:
        check_tracking_uri(uri, timeout_s=2.0)
    assert time.monotonic() - start < 3.0
    assert str(error.value).startswith(f"MLflow tracking server {uri} is unreachable (")
    assert "mlflow/server.sh" in str(error.value)


def test_http_server_that_is_not_mlflow_is_rejected():
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b"nothing here")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(TrackingUnavailableError, match=r"does not answer like an MLflow tracking server \(HTTP 404: 'nothing here'\)"):
            check_tracking_uri(uri)
    finally:
        server.shutdown()
        server.server_close()


def test_local_uris_are_checked(tmp_path):
    with pytest.raises(TrackingUnavailableError, match="directory .*missing.* does not exist"):
        check_tracking_uri(f"sqlite:///{tmp_path}/missing/mlflow.db")
    not_db = tmp_path / "notes.db"
    not_db.write_text("hello")
    with pytest.raises(TrackingUnavailableError, match="exists but is not an SQLite database"):
        check_tracking_uri(f"sqlite:///{not_db}")
    check_tracking_uri(f"sqlite:///{tmp_path}/fresh.db")  # new file in a writable directory
    check_tracking_uri((tmp_path / "mlruns").as_uri())


def test_bounded_http_retries_are_mlflow_settings_and_are_restored(monkeypatch):
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    from dgnode.tracking.server import bounded_http_retries

    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    defaults = (MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get(), MLFLOW_HTTP_REQUEST_TIMEOUT.get())
    with bounded_http_retries():
        assert (MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get(),
                MLFLOW_HTTP_REQUEST_TIMEOUT.get()) == (2, 1, 10)
    assert (MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get(),
            MLFLOW_HTTP_REQUEST_TIMEOUT.get()) == defaults == (7, 2, 120)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")  # the user's setting wins
    with bounded_http_retries():
        assert MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 30
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "30"


def test_live_server_passes_check(mlflow_server):
    check_tracking_uri(mlflow_server)


# -- runs ------------------------------------------------------------------------------------
def test_tracked_run_logs_params_metrics_tags_and_finishes(mlflow_server):
    from mlflow import MlflowClient

    experiment_id = _experiment(mlflow_server)
    config = {"model": {"hidden": 16, "ode": {"method": "rk4", "rtol": 1e-3}}, "optim": {"lr": 0.01}, "data": {"modalities": ["text", "audio"]}}
    with tracked_run(mlflow_server, experiment_id, run_name="ok", tags={"custom": 1}) as run:
        assert run.log_config(config) == 5
        for epoch in range(3):
            run.log_epoch({"epoch": epoch, "train_loss": 1.0 / (epoch + 1), "valid_wf1": 0.1 * epoch, "valid_acc": 0.2,
                           "nfe": 10 + epoch, "epoch_time": 0.5, "ignored": 7})
    client = MlflowClient(mlflow_server)
    stored = client.get_run(run.run_id)
    assert stored.info.status == "FINISHED"
    assert stored.data.params == {"model.hidden": "16", "model.ode.method": "rk4", "model.ode.rtol": "0.001",
                                  "optim.lr": "0.01", "data.modalities": '["text", "audio"]'}
    assert stored.data.tags["custom"] == "1"
    assert set(stored.data.metrics) == set(EPOCH_METRICS)
    history = client.get_metric_history(run.run_id, "valid_wf1")
    assert [(m.step, round(m.value, 6)) for m in history] == [(0, 0.0), (1, 0.1), (2, 0.2)]
    assert [m.value for m in client.get_metric_history(run.run_id, "nfe")] == [10.0, 11.0, 12.0]


def test_run_status_on_failure_interrupt_and_scheduler_stop(mlflow_server):
    from mlflow import MlflowClient

    class SchedulerStop(SystemExit):
        pass

    client = MlflowClient(mlflow_server)
    experiment_id = _experiment(mlflow_server)
    with pytest.raises(RuntimeError):
        with tracked_run(mlflow_server, experiment_id, run_name="fails") as failed:
            raise RuntimeError("loss is NaN")
    with pytest.raises(KeyboardInterrupt):
        with tracked_run(mlflow_server, experiment_id, run_name="interrupted") as killed:
            raise KeyboardInterrupt
    with pytest.raises(SchedulerStop):
        with tracked_run(mlflow_server, experiment_id, run_name="stopped", stop_exceptions=(SchedulerStop,)) as stopped:
            raise SchedulerStop(0)
    with tracked_run(mlflow_server, experiment_id, run_name="decides") as decided:
        decided.status_on_exit = RunStatus.KILLED

    assert client.get_run(failed.run_id).info.status == "FAILED"
    assert client.get_run(failed.run_id).data.tags["dgnode.error"] == "RuntimeError: loss is NaN"
    assert client.get_run(killed.run_id).info.status == "KILLED"
    assert client.get_run(killed.run_id).data.tags["dgnode.stop_reason"] == "interrupted (KeyboardInterrupt)"
    assert client.get_run(stopped.run_id).info.status == "FINISHED"
    assert client.get_run(stopped.run_id).data.tags["dgnode.stop_reason"] == "stopped (SchedulerStop)"
    assert client.get_run(decided.run_id).info.status == "KILLED"


def test_end_dangling_runs_only_touches_running_children(mlflow_server):
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server)
    experiment_id = _experiment(mlflow_server)
    parent = client.create_run(experiment_id, run_name="search").info.run_id
    other_parent = client.create_run(experiment_id, run_name="other").info.run_id
    running = [client.create_run(experiment_id, tags={"mlflow.parentRunId": parent, "n": str(i)}).info.run_id for i in range(3)]
    done = client.create_run(experiment_id, tags={"mlflow.parentRunId": parent}).info.run_id
    client.set_terminated(done, "FINISHED")
    foreign = client.create_run(experiment_id, tags={"mlflow.parentRunId": other_parent}).info.run_id

    ended = end_dangling_runs(mlflow_server, experiment_id, parent,
                              decide=lambda run: "FINISHED" if run.data.tags["n"] == "0" else "KILLED")
    assert ended == {running[0]: "FINISHED", running[1]: "KILLED", running[2]: "KILLED"}
    assert client.get_run(done).info.status == "FINISHED"
    assert client.get_run(foreign).info.status == "RUNNING"
    assert client.get_run(parent).info.status == "RUNNING"
    assert end_dangling_runs(mlflow_server, experiment_id, parent) == {}


def _tiny_model():
    """A real (untrained) DGODE with its config, best-model state and a standard normalisation."""
    import torch

    from dgnode.models.registry import build_model
    from dgnode.training.config import load_train_config

    torch.manual_seed(0)
    config = load_train_config(None, {"model.hidden": 16, "model.ode.method": "rk4", "model.ode.step_size": 0.5})
    dims, labels = {"text": 16, "audio": 12, "vision": 8}, ["hap", "sad", "neu"]
    model = build_model(config.model, dims, 2, len(labels)).eval()
    state = {"model": model.state_dict(), "dims": dims, "label_names": labels, "num_speakers": 2, "best_epoch": 3}
    normalisation = {"method": "standard",
                     "stats": {m: {"mean": torch.randn(d), "std": torch.rand(d) + 0.5} for m, d in dims.items()}}
    return model, config, state, normalisation


def _refuse_unpickling(monkeypatch):
    import pickle

    import cloudpickle

    def refuse(*args, **kwargs):
        raise AssertionError("something was unpickled")

    for module, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (cloudpickle, "load"),
                         (cloudpickle, "loads")):
        monkeypatch.setattr(module, name, refuse)


def test_evaluation_artifacts_and_registered_model(mlflow_server, tmp_path, monkeypatch):
    import mlflow
    import numpy as np
    import pandas as pd
    import torch
    import yaml
    from mlflow import MlflowClient

    from dgnode.features.dataset import Conversation, collate

    client = MlflowClient(mlflow_server)
    experiment_id = _experiment(mlflow_server)
    labels = ["hap", "sad", "neu"]
    report = {"accuracy": 0.5, "weighted_f1": 0.45, "per_class_f1": [0.6, 0.3, 0.45],
              "confusion": [[3, 1, 0], [1, 1, 2], [0, 2, 2]]}
    model, config, state, normalisation = _tiny_model()
    name = f"dgnode-test-{uuid.uuid4().hex[:6]}"
    with tracked_run(mlflow_server, experiment_id, run_name="eval") as run:
        logged = run.log_evaluation(report, labels, split="test")
        uri, version = run.log_model(config, state, normalisation, registered_name=name)
        _, second = run.log_model(config, state, normalisation, registered_name=name)
    assert logged == {"test_acc": 0.5, "test_wf1": 0.45, "test_f1.hap": 0.6, "test_f1.sad": 0.3, "test_f1.neu": 0.45}
    assert client.get_run(run.run_id).data.metrics == logged
    files = sorted(a.path for a in client.list_artifacts(run.run_id, "evaluation"))
    assert files == ["evaluation/test_confusion.csv", "evaluation/test_confusion.png",
                     "evaluation/test_per_class_f1.csv", "evaluation/test_report.json"]
    local = Path(client.download_artifacts(run.run_id, "evaluation/test_confusion.csv", str(tmp_path)))
    assert local.read_text() == "true\\pred,hap,sad,neu\nhap,3,1,0\nsad,1,1,2\nneu,0,2,2\n"
    assert (version, second) == ("1", "2")
    assert client.get_logged_model(uri.removeprefix("models:/")).experiment_id == experiment_id
    versions = client.search_model_versions(f"name='{name}'")
    assert sorted(v.version for v in versions) == ["1", "2"]
    assert {v.run_id for v in versions} == {run.run_id}

    # log_model leaves MLflow's process-wide URI as it was: a models:/ URI needs it set here.
    mlflow.set_tracking_uri(mlflow_server)
    # The model directory: no pickle, a models-from-code pyfunc, the run files.
    directory = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/1", dst_path=str(tmp_path / "model"),
                                                         tracking_uri=mlflow_server))
    stored = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}
    assert not [f for f in stored if f.endswith((".pkl", ".pickle"))], stored
    assert {"MLmodel", "pyfunc_code.py", "artifacts/run/config.yaml", "artifacts/run/best.pt",
            "artifacts/run/model.json"} <= stored
    # Its checkpoint carries the training normalisation: predicting from it never refits.
    saved = torch.load(directory / "artifacts" / "run" / "best.pt", weights_only=True)
    assert saved["normalisation"]["method"] == normalisation["method"]
    flavor = yaml.safe_load((directory / "MLmodel").read_text())["flavors"]["python_function"]
    assert "python_model" not in flavor and flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"

    # Loaded with every unpickler disabled, it predicts exactly what the module predicts.
    _refuse_unpickling(monkeypatch)
    loaded = mlflow.pyfunc.load_model(f"models:/{name}/1")
    generator = np.random.default_rng(0)
    lengths, dims = {"d1": 4, "d2": 3}, state["dims"]
    raw = {m: generator.normal(size=(7, d)).astype(np.float32) for m, d in dims.items()}
    frame = pd.DataFrame({"dialog_id": ["d1"] * 4 + ["d2"] * 3, "speaker": ["A", "B", "A", "B", "Y", "X", "Y"],
                          **{m: list(raw[m]) for m in dims}})
    predicted = loaded.predict(frame)
    stats = normalisation["stats"]
    scaled = {m: torch.from_numpy((raw[m] - stats[m]["mean"].numpy()) / stats[m]["std"].numpy()) for m in dims}
    conversations = [Conversation(d, "test", [f"{d}_{i}" for i in range(n)],
                                  {m: scaled[m][:4] if d == "d1" else scaled[m][4:] for m in dims},
                                  # Speakers by first appearance, as in training: Y X Y -> 0 1 0.
                                  torch.tensor([0, 1, 0, 1] if d == "d1" else [0, 1, 0]), torch.full((n,), -1))
                     for d, n in lengths.items()]
    with torch.no_grad():
        expected = torch.softmax(model(collate(conversations)).logits, dim=-1)
    assert predicted["dialog_id"].tolist() == ["d1"] * 4 + ["d2"] * 3
    assert predicted["position"].tolist() == [0, 1, 2, 3, 0, 1, 2]
    assert predicted["label"].tolist() == expected.argmax(dim=-1).tolist()
    assert predicted["predicted"].tolist() == [labels[i] for i in expected.argmax(dim=-1).tolist()]
    torch.testing.assert_close(torch.tensor(predicted["probability"].to_numpy(), dtype=torch.float32),
                               expected.max(dim=-1).values, rtol=0, atol=0)


def test_provenance_tags(repo_root, tmp_path):
    tags = provenance_tags(store_fingerprint="abc123", store_path="/data/store")
    head = subprocess.run(["git", "-C", str(repo_root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert tags["dgnode.git_commit"].removesuffix("+dirty") == head
    assert tags["mlflow.source.git.commit"] == head
    assert tags["dgnode.store_fingerprint"] == "abc123"
    assert tags["dgnode.store_path"] == "/data/store"
    assert tags["version.torch"] == importlib.metadata.version("torch")
    assert tags["version.torch_geometric"] == importlib.metadata.version("torch-geometric")
    assert set(library_versions()) == {"torch", "ray", "mlflow", "torchdiffeq", "torch_geometric", "dgnode"}
    assert git_commit(tmp_path) == "unknown"


# -- the server scripts ----------------------------------------------------------------------
def test_server_scripts_refuse_bad_state(repo_root, tmp_path):
    env = {**os.environ, "MLFLOW_SERVER_DIR": str(tmp_path), "MLFLOW_BIN": str(Path(sys.executable).with_name("mlflow"))}
    stop = str(repo_root / "mlflow" / "stop.sh")
    start = str(repo_root / "mlflow" / "server.sh")
    assert subprocess.run([stop], env=env, capture_output=True, text=True).returncode == 0  # no PID file
    (tmp_path / "server.pid").write_text("not-a-pid")
    result = subprocess.run([stop], env=env, capture_output=True, text=True)
    assert result.returncode == 2 and "does not hold a PID" in result.stderr
    # A stale PID (a finished process) is cleaned up, not signalled.
    finished = subprocess.Popen(["true"])
    finished.wait()
    (tmp_path / "server.pid").write_text(str(finished.pid))
    result = subprocess.run([stop], env=env, capture_output=True, text=True)
    assert result.returncode == 0 and "not running" in result.stdout and not (tmp_path / "server.pid").exists()
    # A live process that is not mlflow is refused.
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / "server.pid").write_text(str(sleeper.pid))
        result = subprocess.run([stop], env=env, capture_output=True, text=True)
        assert result.returncode == 2 and "is not an mlflow server" in result.stderr
        assert sleeper.poll() is None
        # ... and server.sh will not start a second server over a live PID file.
        result = subprocess.run([start], env={**env, "MLFLOW_PORT": str(_free_port())}, capture_output=True, text=True)
        assert result.returncode == 2 and "already running" in result.stderr
    finally:
        sleeper.kill()
        sleeper.wait()
    result = subprocess.run([start], env={**env, "MLFLOW_PORT": "99999"}, capture_output=True, text=True)
    assert result.returncode == 2 and "MLFLOW_PORT must be a port number" in result.stderr
    # A killed server that init has not reaped yet (a zombie) holds no port and never answers: it
    # does not block the next start (a test restarting a server on its port met one under load).
    zombie = subprocess.Popen(["sleep", "30"])
    zombie.kill()
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the killed child did not become a zombie"
            time.sleep(0.05)
        (tmp_path / "server.pid").write_text(str(zombie.pid))
        fake = tmp_path / "fake-mlflow"  # exits at once: only the script's own checks are under test
        fake.write_text("#!/bin/sh\nexit 0\n")
        fake.chmod(0o755)
        result = subprocess.run([start], env={**env, "MLFLOW_BIN": str(fake), "MLFLOW_PORT": str(_free_port())},
                                capture_output=True, text=True)
        assert result.returncode == 0 and "mlflow server starting" in result.stdout, result.stderr
        assert int((tmp_path / "server.pid").read_text()) != zombie.pid
        # ... nor is it a server for stop.sh to refuse or wait for: a stale PID file.
        (tmp_path / "server.pid").write_text(str(zombie.pid))
        result = subprocess.run([stop], env=env, capture_output=True, text=True)
        assert result.returncode == 0 and "not running" in result.stdout and not (tmp_path / "server.pid").exists()
    finally:
        zombie.wait()


def test_sqlite_experiments_keep_artifacts_beside_the_database(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)  # MLflow's default would be ./mlruns here
    uri = f"sqlite:///{tmp_path}/db/mlflow.db"
    (tmp_path / "db").mkdir()
    experiment_id = ensure_experiment(uri, "local")
    assert ensure_experiment(uri, "local") == experiment_id
    assert MlflowClient(uri).get_experiment(experiment_id).artifact_location == (tmp_path / "db" / "mlartifacts").as_uri()
    with tracked_run(uri, experiment_id, run_name="r") as run:
        run.log_text("hello", "notes/a.txt")
    assert (tmp_path / "db" / "mlartifacts" / run.run_id / "artifacts" / "notes" / "a.txt").read_text() == "hello"
    assert not (tmp_path / "mlruns").exists()


def test_compare_command_lists_runs_best_first(tmp_path, capsys):
    from dgnode.command import run_command
    from dgnode.tracking.cli import COMMANDS

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    experiment_id = ensure_experiment(uri, "cmp")
    for name, score in (("low", 0.4), ("high", 0.7)):
        with tracked_run(uri, experiment_id, run_name=name) as run:
            run.log_config({"model": {"ode": {"method": "rk4"}}})
            run.log_epoch({"epoch": 1, "valid_wf1": score})
    plot = tmp_path / "cmp.png"
    assert run_command(COMMANDS, ["compare", "--experiment", "cmp", "--tracking_uri", uri, "--top", "1",
                                  "--plot", str(plot)]) == 0
    printed = capsys.readouterr().out
    assert "high" in printed and "low" not in printed and plot.is_file()
    assert run_command(COMMANDS, ["compare", "--experiment", "cmp", "--tracking_uri", uri, "--top", "0"]) == 2
    assert "--top must be at least 1, got 0" in capsys.readouterr().err
