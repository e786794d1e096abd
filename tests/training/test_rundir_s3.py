"""Run directories in a real S3 server (SeaweedFS): every RunDir file, `dgnode train --out s3://...`
and `dgnode evaluate --run s3://...`, with nothing written to the local disk."""

from __future__ import annotations

import io
import json

import pytest
import torch

from dgnode.command import run_command
from dgnode.errors import InputError
from dgnode.training.cli import COMMANDS
from dgnode.training.config import load_train_config
from dgnode.training.rundir import RunDir
from tests.seaweed import split_uri

PNG = b"\x89PNG\r\n\x1a\n"


def test_every_run_file_round_trips_through_s3(s3_uri, s3_server, tmp_path):
    run = RunDir(f"{s3_uri}/run")
    assert run.uri == f"{s3_uri}/run" and not run.has_best()
    with pytest.raises(InputError, match=rf"^{s3_uri}/run: not a finished run: config.yaml is missing"):
        run.require_finished()
    with pytest.raises(InputError, match="needs a local path"):
        run.path  # noqa: B018 - a remote run has no local directory

    config = load_train_config(None, {"model.hidden": 16, "data.store": "s3://somewhere/store"})
    run.write_config(config)
    weights = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "best_epoch": 3}
    run.save_model(weights)
    run.save_state({"epoch": 4, "optimizer": {"lr": 0.1}})
    run.write_history([{"epoch": 0, "valid_wf1": 0.5}])
    run.write_report({"test": {"weighted_f1": float("nan")}})
    run.write_model_card({"model": "dgode"})
    run.write_evaluation("valid", {"accuracy": 0.25})
    run.require_finished()

    again = RunDir(f"{s3_uri}/run/")  # a trailing slash names the same directory
    assert again.read_config().model.hidden == 16 and again.read_config().data.store == "s3://somewhere/store"
    assert torch.equal(again.load_model()["model"]["w"], weights["model"]["w"])
    assert again.load_state()["epoch"] == 4
    assert again.read_history() == [{"epoch": 0, "valid_wf1": 0.5}]
    assert again.read_report() == {"test": {"weighted_f1": None}}
    assert again.read_model_card() == {"model": "dgode"}
    bucket, prefix = split_uri(s3_uri)
    assert s3_server.keys(bucket, prefix) == sorted(f"{prefix}/run/{name}" for name in (
        "config.yaml", "best.pt", "state.pt", "history.json", "report.json", "model.json", "eval_valid.json"))

    # Between the disk and the bucket, both ways (a Ray checkpoint is local, a run may be remote).
    local = RunDir(tmp_path / "local")
    again.copy_best_to(local)
    assert torch.equal(torch.load(local.path / "best.pt", weights_only=True)["model"]["w"], weights["model"]["w"])
    back = RunDir(f"{s3_uri}/back")
    local.copy_best_to(back)
    assert back.has_best() and RunDir(f"{s3_uri}/empty").read_history() == []


def test_a_damaged_checkpoint_in_s3_is_one_error_naming_its_uri(s3_uri):
    run = RunDir(f"{s3_uri}/bad")
    (run.location / RunDir.BEST).write_bytes(b"not a torch file")
    with pytest.raises(InputError, match=rf"^{s3_uri}/bad/best.pt: unreadable checkpoint"):
        run.load_model()
    with pytest.raises(InputError, match=rf"^{s3_uri}/bad: state.pt is missing"):
        run.load_state()


def test_train_and_evaluate_a_run_in_s3(s3_uri, s3_server, tiny_synthetic_store, tmp_path, monkeypatch, capsys):
    """With the store in S3 too: the run directory, its figures and a re-evaluation are objects in
    the bucket; the working directory stays empty."""
    monkeypatch.chdir(tmp_path)
    out, store = f"{s3_uri}/runs/tiny", f"{s3_uri}/store"
    s3_server.upload(tiny_synthetic_store, *split_uri(store))
    flags = ["--model.hidden=16", "--train.batch_size=4", "--train.epochs=2", "--model.ode.method=rk4",
             "--model.ode.step_size=0.5", "--report.tsne_points=0", "--progress=false"]
    assert run_command(COMMANDS, ["train", "--data.store", store, "--out", out, *flags]) == 0
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert final["out_dir"] == out and final["epochs_run"] == 2

    bucket, prefix = split_uri(out)
    names = {key[len(prefix) + 1:] for key in s3_server.keys(bucket, prefix)}
    assert names == {"config.yaml", "best.pt", "history.json", "report.json", "confusion_test.png", "per_class_f1_test.png"}
    client = s3_server.client()
    for name in ("confusion_test.png", "per_class_f1_test.png"):
        assert client.get_object(Bucket=bucket, Key=f"{prefix}/{name}")["Body"].read()[:8] == PNG
    report = json.loads(client.get_object(Bucket=bucket, Key=f"{prefix}/report.json")["Body"].read())
    assert report["out_dir"] == out and report["test"]["weighted_f1"] == final["test_weighted_f1"]
    assert report["data"]["store"] == store
    best = torch.load(io.BytesIO(client.get_object(Bucket=bucket, Key=f"{prefix}/best.pt")["Body"].read()),
                      weights_only=True)
    assert best["best_epoch"] == report["best_epoch"]

    assert run_command(COMMANDS, ["evaluate", "--run", out]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated["weighted_f1"] == report["test"]["weighted_f1"]
    assert json.loads(client.get_object(Bucket=bucket, Key=f"{prefix}/eval_test.json")["Body"].read())["accuracy"] \
        == report["test"]["accuracy"]
    assert list(tmp_path.iterdir()) == []  # nothing of the run on the local disk


def test_evaluating_a_missing_run_in_s3_names_its_uri(s3_uri, capsys):
    assert run_command(COMMANDS, ["evaluate", "--run", f"{s3_uri}/nothing"]) == 2
    assert capsys.readouterr().err.strip() == \
        f"dgnode: error: {s3_uri}/nothing: not a finished run: config.yaml is missing"
