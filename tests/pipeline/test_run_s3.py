"""The pipeline with an s3:// workdir (a real S3 server, SeaweedFS): what cannot work is one clear
error naming the URI before any stage runs."""

from __future__ import annotations

import pytest

from dgnode.errors import InputError
from dgnode.pipeline.run import PipelineConfig, run_pipeline
from tests.seaweed import split_uri


def test_an_s3_workdir_needs_a_tracking_server(s3_uri, s3_server, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    workdir = f"{s3_uri}/pipeline"
    with pytest.raises(InputError) as error:
        run_pipeline(PipelineConfig(workdir=workdir), progress=False)
    assert str(error.value) == (f"{workdir}: an s3:// workdir has no local directory for MLflow's database: pass "
                                "--tracking_uri http://HOST:PORT (a tracking server, mlflow/server.sh) or set "
                                "MLFLOW_TRACKING_URI")
    bucket, _ = split_uri(s3_uri)
    assert s3_server.keys(bucket) == []  # no stage ran


def test_a_missing_bucket_stops_the_pipeline_before_any_stage(s3_uri, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=r"^s3://dgnode-no-such-bucket/p: cannot open the bucket: the bucket does not exist"):
        run_pipeline(PipelineConfig(workdir="s3://dgnode-no-such-bucket/p", tracking_uri=f"sqlite:///{tmp_path}/m.db"),
                     progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_demo_pipeline_with_every_output_in_s3(s3_ray_head, s3_server, s3_uri, mlflow_server, tmp_path):
    """The generated corpus is uploaded, scanned, extracted, searched and reported entirely under
    the s3:// workdir (text only and one short trial: the stages, not the learning, are checked);
    the working directory stays empty."""
    import json
    import os
    import subprocess
    import sys

    workdir = f"{s3_uri}/p"
    command = [sys.executable, "-m", "dgnode.cli", "pipeline", "--demo", "--workdir", workdir, "--tracking_uri",
               mlflow_server, "--synth.dialogs", "8", "--modalities", "[text]", "--tune.trials", "1", "--tune.epochs", "2",
               "--tune.experiment", "pipeline-s3", "--progress", "false", "--json"]
    done = subprocess.run(command, env={**s3_ray_head.driver_env(), "PYTHONPATH": os.pathsep.join(sys.path)},
                          cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["workdir"], result["store"]) == (workdir, f"{workdir}/features-tiny")
    assert result["search_dir"].startswith(f"{workdir}/search-") and result["stored"] > 0
    assert set(result["plots"].values()) == {f"{workdir}/plots/{name}.png"
                                             for name in ("confusion_dgode", "confusion_mlp", "per_class_f1")}
    bucket, prefix = split_uri(workdir)
    keys = {key[len(prefix) + 1:] for key in s3_server.keys(bucket, prefix)}
    search = result["search_dir"][len(workdir) + 1:]
    assert {"scan/manifest.parquet", "features-tiny/metadata.json", "baseline-mlp/best.pt", "baseline-mlp/report.json",
            f"{search}/search.json", f"{search}/summary.json", f"{search}/search/tuner.pkl"} <= keys
    assert any(key.startswith("corpus/") and key.endswith(".avi") for key in keys)
    assert list(tmp_path.iterdir()) == []
