"""`ray job submit` of the main job to a real local Ray head (with its dashboard / job server).

The head runs in its own process session and is stopped in teardown by that session only
(never `ray stop`, which would end every Ray on the machine), also when the test fails.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dgnode.cluster import stop_session

EXCLUDES = [".venv", ".git", "demo_output", "mlruns", "mlflow.db", "**/__pycache__", ".pytest_cache", "*.egg-info"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, timeout_s: float, head: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if head.poll() is not None:
            pytest.fail(f"ray head exited with {head.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # answering (401 without the cluster's token): the server is up
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {timeout_s} s:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def ray_head(tmp_path):
    """A Ray head with its job server on 127.0.0.1; yields the job-server address."""
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",  # `python` in the job = this venv
        "RAY_AUTH_MODE": "token",
        "RAY_USAGE_STATS_ENABLED": "0",
        "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
        "AUTOSCALER_METRIC_PORT": str(_free_port()),  # not the fixed 44217 another Ray may hold
    }
    env.pop("RAY_ADDRESS", None)
    dashboard_port = _free_port()
    temp_dir = Path("/tmp") / f"dgjob-{os.getpid()}"  # short: Ray's socket paths have a length limit
    log = tmp_path / "head.log"
    head = subprocess.Popen(
        [str(bin_dir / "ray"), "start", "--head", "--block", f"--port={_free_port()}", "--num-cpus=4", "--num-gpus=0",
         "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
         # Every port free: another Ray of this test session (ray_local) holds the fixed defaults,
         # and a job agent that cannot bind its port leaves the head with no agent to run jobs.
         f"--dashboard-agent-listen-port={_free_port()}", f"--dashboard-agent-grpc-port={_free_port()}",
         f"--metrics-export-port={_free_port()}", f"--runtime-env-agent-port={_free_port()}",
         f"--ray-client-server-port={_free_port()}",
         f"--temp-dir={temp_dir}", "--disable-usage-stats"],
        env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    address = f"http://127.0.0.1:{dashboard_port}"
    try:
        _wait_http(f"{address}/api/version", 180, head, log)
        yield address, env
    finally:
        stop_session(head.pid)
        subprocess.run(["rm", "-rf", str(temp_dir)], check=False)


@pytest.mark.slow
def test_pipeline_job_runs_to_success_on_a_local_head(ray_head, repo_root, tmp_path):
    address, env = ray_head
    workdir = tmp_path / "work"
    ray_bin = str(Path(sys.executable).parent / "ray")
    command = [ray_bin, "job", "submit", "--address", address, "--no-wait", "--working-dir", str(repo_root),
               "--runtime-env-json", json.dumps({"excludes": EXCLUDES}),
               "--", "python", "jobs/pipeline.py", "--demo", "--workdir", str(workdir), "--tune.trials", "2", "--tune.epochs", "2", "--json"]
    # The dashboard answers before the node's job agent has registered: Ray then says
    # "No available agent to submit job, please try again later".
    deadline = time.monotonic() + 120
    while True:
        submit = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        if submit.returncode == 0 or "No available agent" not in submit.stderr + submit.stdout or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert submit.returncode == 0, submit.stdout + submit.stderr
    job_id = next(word for word in submit.stdout.split() if word.strip("'\"").startswith("raysubmit_")).strip("'\"")

    deadline = time.monotonic() + 600
    status = ""
    while time.monotonic() < deadline:
        status = subprocess.run([ray_bin, "job", "status", "--address", address, job_id], env=env,
                                capture_output=True, text=True, timeout=120).stdout.lower()
        # The CLI says e.g. "Job 'raysubmit_...' succeeded" / "failed" / "was stopped".
        if any(f"{job_id.lower()}' {word}" in status for word in ("succeeded", "failed", "was stopped")):
            break
        time.sleep(3)
    logs = subprocess.run([ray_bin, "job", "logs", "--address", address, job_id], env=env,
                          capture_output=True, text=True, timeout=120).stdout
    assert f"{job_id.lower()}' succeeded" in status, f"job status: {status}\n--- logs ---\n{logs[-6000:]}"

    result = json.loads(logs.strip().splitlines()[-1])
    assert result["trials"] == 2 and result["model_uri"]

    from dgnode.corpus.manifest import load_manifest
    from dgnode.features.store import FeatureStore

    manifest = load_manifest(workdir / "scan" / "manifest.parquet")
    store = FeatureStore.open(workdir / "features-tiny")
    assert store.stored_utt_ids() == set(manifest["utt_id"])
    assert store.metadata.model == "imagebind-tiny" or "tiny" in store.metadata.model

    from mlflow import MlflowClient

    client = MlflowClient(result["tracking_uri"])
    runs = client.search_runs([result["experiment_id"]], max_results=100)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == result["parent_run_id"]]
    assert len(children) >= 2
    assert all(r.info.status in ("FINISHED", "FAILED", "KILLED") for r in runs)
    assert any("valid_wf1" in r.data.metrics for r in children)
    # The extraction's counts are on the search's parent run (a local corpus: nothing fetched).
    parent = client.get_run(result["parent_run_id"]).data.metrics
    assert parent["extract.stored"] == len(manifest) and parent["extract.fetched_bytes"] == 0
