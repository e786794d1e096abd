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
