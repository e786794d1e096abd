"""Fixtures of the multi-node tests: clusters of ``ray start`` nodes that share nothing but the
S3 server (``tests/raycluster.py``) and an MLflow server whose artifacts go to that S3 server;
all stopped by PID in teardown, also when a test fails.

The machine has two cores shared with other work: nodes are small (a few logical CPUs) and these
tests start one cluster at a time.
"""

from __future__ import annotations

from typing import Callable

import pytest

from tests.raycluster import REPO_ROOT, MultiNodeCluster, NodeSpec, free_port, typed_like


@pytest.fixture(scope="session")
def cluster_config() -> dict:
    from dgnode.cluster import load_cluster_config

    return load_cluster_config(REPO_ROOT / "cluster.yaml")


@pytest.fixture
def start_cluster(s3_server) -> Callable[..., MultiNodeCluster]:
    """``start_cluster(head, workers)``: a started cluster whose nodes have the S3 server's AWS
    variables; every cluster started through it is stopped at the end of the test."""
    started: list[MultiNodeCluster] = []

    def start(head: NodeSpec, workers: list[NodeSpec]) -> MultiNodeCluster:
        cluster = MultiNodeCluster(head, workers, env=s3_server.env())
        started.append(cluster)
        return cluster.start()

    yield start
    for cluster in started:
        cluster.stop()
    leftovers = [pid for cluster in started for pid in cluster.leftover_processes()]
    assert not leftovers, f"processes of the cluster survived its stop: {leftovers}"


@pytest.fixture(scope="module")
def three_nodes(cluster_config, s3_server):
    """A head without CPUs for tasks and two one-CPU worker nodes typed like cluster.yaml's
    ``worker.gpu.a10g.4cpu`` (one fake GPU, ``accelerator_type:A10G``) and ``worker.cpu.decode``."""
    head = typed_like(cluster_config, "head", "head.cpu", cpus=0)
    workers = [typed_like(cluster_config, "gpu1", "worker.gpu.a10g.4cpu", cpus=1),
               typed_like(cluster_config, "decode1", "worker.cpu.decode", cpus=1)]
    cluster = MultiNodeCluster(head, workers, env=s3_server.env())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
    assert not cluster.leftover_processes()


@pytest.fixture(scope="module")
def bucket(s3_server) -> str:
    return s3_server.make_bucket()


@pytest.fixture(scope="module")
def mlflow_s3(s3_server, bucket, tmp_path_factory) -> str:
    """An MLflow server on the head (``mlflow/server.sh``, SQLite metadata on the head's disk) whose
    artifacts go to ``s3://BUCKET/mlflow`` (``--artifacts-destination``); its URL. Stopped (its
    process group, by PID) at the end, also when a test fails."""
    from tests.tuning.server_process import kill_server, start_server

    port = free_port()
    pid = start_server(tmp_path_factory.mktemp("mlflow"), port,
                       extra_env={**s3_server.env(), "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{bucket}/mlflow"})
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        kill_server(pid, port)


@pytest.fixture
def s3_env(s3_server, monkeypatch) -> dict[str, str]:
    """This process's AWS variables pointing at the test S3 server (to read what the jobs wrote)."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return s3_server.env()
