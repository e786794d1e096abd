"""Fixtures of the multi-node tests: clusters of ``ray start`` nodes that share nothing but the
S3 server (``tests/raycluster.py``), stopped by PID in teardown, also when a test fails.

The machine has two cores shared with other work: nodes are small (one or two logical CPUs) and
these tests start one cluster at a time.
"""

from __future__ import annotations

from typing import Callable

import pytest

from tests.raycluster import REPO_ROOT, MultiNodeCluster, NodeSpec, typed_like


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
