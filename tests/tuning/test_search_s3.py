"""A search whose directory and feature store are s3:// prefixes in a real S3 server (SeaweedFS):
bad locations are one clear error before any work; a trial whose actor is lost resumes from its
checkpoint in S3; a driver killed mid-search resumes from S3 alone, to every trial finished once;
no credential is in any object the search wrote."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from dgnode.cli import main
from dgnode.tuning.trust import refuse_untrusted
from tests.seaweed import ACCESS_KEY, SECRET_KEY, split_uri
from tests.tuning.tiny import TINY_OVERRIDES, as_flags


def _tune(*args: str) -> list[str]:
    return [sys.executable, "-m", "dgnode.cli", "tune", *args, "--progress=false"]


def test_resume_reads_the_record_from_s3_and_names_the_uri(s3_uri, capsys):
    """No record, a damaged record, a second search into the same prefix: each is one line naming
    the object-store location. An S3 prefix passes the trust check (trust is the bucket's access
    control, see dgnode.tuning.trust) and the record is read from the bucket."""
    out = f"{s3_uri}/search"
    assert main(["tune", "--resume", "--out", out, "--progress=false"]) == 2
    assert capsys.readouterr().err.strip() == (f"dgnode: error: {out}: no search to resume: search.json is missing "
                                               "(run without --resume first)")
    refuse_untrusted(out)  # nothing to check on a prefix: no exception
    from dgnode.storage import resolve

    (resolve(out) / "search.json").write_text("{not json")
    assert main(["tune", "--resume", "--out", out, "--progress=false"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"dgnode: error: {out}/search.json: unreadable search record") and "\n" not in err
    assert main(["tune", "--data.store", "/nowhere", "--space", "/nowhere.yaml", "--out", out, "--progress=false"]) == 2
    assert capsys.readouterr().err.strip().startswith(f"dgnode: error: {out}: search.json exists: this directory holds a search")


def test_a_missing_bucket_is_one_error_before_any_work(s3_uri, tiny_store, tmp_path, capsys):
    out = "s3://dgnode-no-such-bucket/search"
    space = tmp_path / "space.yaml"
    space.write_text("params:\n  optim.lr: {loguniform: [1.0e-3, 3.0e-2]}\n")
    started = time.monotonic()
    assert main(["tune", "--data.store", str(tiny_store), "--space", str(space), "--out", out,
                 "--tracking_uri", f"sqlite:///{tmp_path}/mlflow.db", "--progress=false"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"dgnode: error: {out}: cannot open the bucket: the bucket does not exist") and "\n" not in err
    assert time.monotonic() - started < 30
    assert not (tmp_path / "mlflow.db").exists()  # nothing tracked, nothing trained


def _wait(predicate, timeout_s: float, what: str, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the search ended (code {process.returncode}) before {what}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@pytest.mark.slow
def test_search_in_s3_survives_a_lost_trial_and_a_killed_driver(s3_ray_head, s3_server, s3_uri, tiny_store, tmp_path):
    from mlflow import MlflowClient

    from dgnode.storage import resolve

    trials, epochs = 3, 5
    out, store = f"{s3_uri}/search", f"{s3_uri}/store"
    s3_server.upload(tiny_store, *split_uri(store))
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    space = tmp_path / "space.yaml"
    space.write_text("params:\n  optim.lr: {loguniform: [1.0e-3, 3.0e-2]}\n")
    env = {**s3_ray_head.driver_env(), "PYTHONPATH": os.pathsep.join(sys.path)}
    first_dir, later_dir = tmp_path / "first", tmp_path / "later"
    first_dir.mkdir()
    later_dir.mkdir()
    command = _tune("--data.store", store, "--space", str(space), "--trials", str(trials), "--epochs",
                    str(epochs), "--max_concurrent", "1", "--grace_period", str(epochs), "--max_failures", "1",
                    "--experiment", "tune-s3", "--tracking_uri", tracking, "--out", out, *as_flags(TINY_OVERRIDES))
    with open(tmp_path / "first.log", "wb") as log:
        driver = subprocess.Popen(command, env=env, cwd=first_dir, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    client = None

    def running_trial_two_epochs_in():
        nonlocal client
        if not (resolve(out) / "search.json").exists():
            return None  # a client creates the database: not before the driver has (two creating its tables race)
        client = client or MlflowClient(tracking)
        experiment = client.get_experiment_by_name("tune-s3")
        if experiment is None:
            return None
        for run in client.search_runs([experiment.experiment_id], filter_string="attributes.status = 'RUNNING'"):
            if run.data.tags.get("dgnode.run_kind") == "trial" and "train_loss" in run.data.metrics \
                    and len(client.get_metric_history(run.info.run_id, "train_loss")) >= 2:
                return run
        return None

    ledger = resolve(out) / "trials.json"
    try:
        # A trial's actor dies mid-trial (as with its node): two epochs in (so the first epoch's
        # checkpoint is registered), before it ends.
        lost = _wait(running_trial_two_epochs_in, 240, "a trial reported two epochs", driver)
        actors = s3_ray_head.processes("ray::ImplicitFunc")
        assert len(actors) == 1, actors
        os.kill(actors[0], signal.SIGKILL)
        # Tune restarts it from its last checkpoint in S3.
        _wait(lambda: client.get_run(lost.info.run_id).info.status == "FINISHED", 240, "the lost trial finished", driver)
        lost_steps = [m.step for m in client.get_metric_history(lost.info.run_id, "train_loss")]
        # Then the driver itself is killed (no clean-up at all) once two trials have ended.
        _wait(lambda: ledger.exists() and len(ledger.read_json()) >= 2, 300, "two trials ended", driver)
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(timeout=30)
    # Resumed from another working directory: only what is in S3 (and the tracking database) is used.
    codes, resumed_at = [], time.monotonic()
    for attempt in range(3):
        done = subprocess.run(_tune("--resume", "--out", out, "--tracking_uri", tracking), env=env, cwd=later_dir,
                              capture_output=True, text=True, timeout=600)
        codes.append(done.returncode)
        if done.returncode == 0:
            break
    assert codes[-1] == 0, (codes, done.stdout[-3000:], done.stderr[-3000:])

    print(f"resumed in {len(codes)} session(s), {time.monotonic() - resumed_at:.0f} s")
    summary = (resolve(out) / "summary.json").read_json()
    assert not summary["interrupted"] and summary["model_version"] == "1" and summary["out_dir"] == out
    assert len(summary["trials"]) == trials and {t["status"] for t in summary["trials"]} == {"TERMINATED"}
    # Every trial ended once. A trial that started after Tune's last saved snapshot is unknown to
    # the restored search (Optuna proposes afresh): the ledger may hold it too, never as anything else.
    ended = ledger.read_json()
    assert {t["trial_id"] for t in summary["trials"]} <= set(ended) and set(ended.values()) == {"TERMINATED"}
    record = (resolve(out) / "search.json").read_json()
    assert record["completed"] and (resolve(out) / "space.yaml").read_text() == space.read_text()

    # The lost trial failed (Tune recorded its actor's death in S3) and went on from its last
    # checkpoint, not from scratch: the first epoch ran once (only the epoch in flight at the kill
    # may have been reported twice), and it ended with every epoch.
    assert lost_steps.count(0) == 1 and sorted(set(lost_steps)) == list(range(epochs)), lost_steps
    lost_id = lost.data.tags["dgnode.trial_id"]
    bucket, prefix = split_uri(out)
    errors = [key for key in s3_server.keys(bucket, prefix) if f"_{lost_id}_" in key and key.endswith("/error.txt")]
    assert len(errors) == 1, errors
    assert "The actor died unexpectedly" in s3_server.client().get_object(Bucket=bucket, Key=errors[0])["Body"].read().decode()
    runs = client.search_runs([record["experiment_id"]], filter_string=f"tags.`mlflow.parentRunId` = '{record['parent_run_id']}'")
    trial_runs = [r for r in runs if r.data.tags.get("dgnode.run_kind") == "trial"]
    assert {r.data.tags["dgnode.store_path"] for r in trial_runs} == {store}
    assert not [r for r in runs if r.info.status == "RUNNING"]
    for trial in summary["trials"]:  # one run per trial of the search, finished
        assert [r.info.status for r in trial_runs if r.data.tags["dgnode.trial_id"] == trial["trial_id"]] == ["FINISHED"]
    assert {r.info.status for r in trial_runs} <= {"FINISHED", "KILLED"}
    assert len(client.search_model_versions("name='tune-s3'")) == 1

    # Everything of the search is in the bucket (Tune's experiment and checkpoints included), and
    # no object holds a credential.
    keys = s3_server.keys(bucket, prefix)
    assert f"{prefix}/search/tuner.pkl" in keys
    # One checkpoint per trial is left (the latest: its best.pt was what the final test read).
    for trial in summary["trials"]:
        kept = {key.rsplit("/", 2)[0] for key in keys if f"_{trial['trial_id']}_" in key and key.endswith("/state.pt")}
        assert len(kept) == 1, kept
    assert s3_server.keys_holding(bucket, prefix, SECRET_KEY, ACCESS_KEY) == []
    assert not list((tmp_path / "later").iterdir())  # the resume wrote nothing locally
