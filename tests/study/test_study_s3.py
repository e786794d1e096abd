"""A study whose out is an s3:// prefix in a real S3 server (SeaweedFS): every run directory and
every table are objects; a second invocation reuses the runs it finds there."""

from __future__ import annotations

import io

import pandas as pd

from dgnode.command import run_command
from dgnode.storage import resolve
from dgnode.study.cli import COMMANDS
from dgnode.training.rundir import RunDir
from tests.seaweed import split_uri


def test_a_study_in_s3_writes_and_reuses_its_runs_there(study_store, s3_uri, s3_server, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = f"{s3_uri}/study"
    args = ["study", "--store", str(study_store), "--models", "[mlp]", "--seeds", "2", "--out", out,
            "--runner", "local", "--quiet", "--overrides", "{train.epochs: 1, model.hidden: 8}"]
    assert run_command(COMMANDS, args) == 0
    assert f"wrote {out}/study.md" in " ".join(capsys.readouterr().out.split())
    bucket, prefix = split_uri(out)
    names = {key[len(prefix) + 1:] for key in s3_server.keys(bucket, prefix)}
    assert {"study.md", "study.csv", "study_tests.csv", "study_runs.csv", "study.json"} <= names
    for mode in ("offline", "causal"):
        for seed in (0, 1):
            assert {f"runs/mlp-{mode}-seed{seed}/{name}" for name in ("config.yaml", "best.pt", "report.json")} <= names
    runs = pd.read_csv(io.StringIO((resolve(out) / "study_runs.csv").read_text()))
    assert set(runs["status"]) == {"trained"} and set(runs["run_dir"]) == {
        f"{out}/runs/mlp-{mode}-seed{seed}" for mode in ("offline", "causal") for seed in (0, 1)}
    assert RunDir(f"{out}/runs/mlp-causal-seed1").read_config().train.seed == 1

    before = (resolve(out) / "study.csv").read_text()
    assert run_command(COMMANDS, args) == 0  # every run found in S3 and reused
    assert "none (all runs reused)" in capsys.readouterr().out
    assert (resolve(out) / "study.csv").read_text() == before
    assert list(tmp_path.iterdir()) == []
