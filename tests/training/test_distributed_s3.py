"""Ray Train with its store and storage in a real S3 server (SeaweedFS): every worker reads the store
by its URI, checkpoints go to the bucket, and a worker killed mid-run (as with its node) makes Ray
Train restart the worker group from the last checkpoint in S3, not from scratch; the run is
tracked and its model registered."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.seaweed import ACCESS_KEY, SECRET_KEY, split_uri
from tests.tuning.tiny import TINY_OVERRIDES, as_flags


@pytest.mark.slow
def test_a_worker_lost_mid_run_resumes_from_the_checkpoint_in_s3(s3_ray_head, s3_server, s3_uri, tiny_synthetic_store, tmp_path):
    from mlflow import MlflowClient

    from dgnode.storage import resolve

    epochs = 6
    storage, store = f"{s3_uri}/train", f"{s3_uri}/store"
    s3_server.upload(tiny_synthetic_store, *split_uri(store))
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    command = [sys.executable, "-m", "dgnode.cli", "train-ray", "--data.store", store,
               *as_flags({**TINY_OVERRIDES, "train.epochs": epochs}), "--num_workers", "2", "--storage_path", storage,
               "--name", "lost", "--max_failures", "1", "--tracking_uri", tracking, "--experiment", "train-s3"]
    env = {**s3_ray_head.driver_env(), "PYTHONPATH": os.pathsep.join(sys.path)}
    run_dir = resolve(storage) / "lost"

    def histories() -> dict[str, list]:
        return {c.name: (c / "history.json").read_json()["history"] for c in run_dir.children("checkpoint_*", kind="dir")
                if (c / "history.json").exists()}

    with open(tmp_path / "driver.log", "wb") as log:
        driver = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    def registered() -> list[str]:
        # Ray Train's record of the checkpoints it has taken (written before it deletes any).
        snapshot = run_dir / "checkpoint_manager_snapshot.json"
        return sorted(set(re.findall(r"checkpoint_[0-9][-0-9_.]*", snapshot.read_text()))) if snapshot.exists() else []

    try:
        deadline = time.monotonic() + 300
        while not registered() and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
        before = histories()[registered()[-1]]
        assert 0 < len(before) < epochs
        workers = s3_ray_head.processes("ray::RayTrainWorker")
        assert len(workers) == 2, workers
        os.kill(workers[1], signal.SIGKILL)
        assert driver.wait(timeout=400) == 0, (tmp_path / "driver.log").read_text()[-3000:]
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(timeout=30)

    final = max(histories().values(), key=len)
    assert [h["epoch"] for h in final] == list(range(epochs))
    # Restored, not re-run: the epochs checkpointed before the kill keep their exact records
    # (epoch_time included), which a run started over would not reproduce.
    assert final[:len(before)] == before
    client = MlflowClient(tracking)
    (run,) = client.search_runs([client.get_experiment_by_name("train-s3").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["dgnode.store_path"] == store
    assert [v.run_id for v in client.search_model_versions("name='train-s3'")] == [run.info.run_id]
    logged = client.download_artifacts(run.info.run_id, "history.json", str(tmp_path))
    assert json.loads(Path(logged).read_text())["history"] == final
    # Ray's run state and checkpoints: no credential in any object.
    assert s3_server.keys_holding(*split_uri(storage), SECRET_KEY, ACCESS_KEY) == []
