"""Fixtures of the cluster tests: the repository's cluster.yaml, loaded once, and what it declares."""

from __future__ import annotations

from pathlib import Path

import pytest

from dgnode import cluster as C


@pytest.fixture(scope="module")
def cluster_yaml(repo_root: Path) -> Path:
    return repo_root / "cluster.yaml"


@pytest.fixture(scope="module")
def config(cluster_yaml: Path) -> dict:
    return C.load_cluster_config(cluster_yaml)


@pytest.fixture(scope="session")
def expected_resources() -> dict[str, dict[str, float]]:
    """What each node type of cluster.yaml offers Ray."""
    return {
        "head.cpu": {"CPU": 4, "GPU": 0},
        "worker.gpu.a10g.4cpu": {"CPU": 4, "GPU": 1, "accelerator_type:A10G": 1},
        "worker.gpu.a10g.8cpu": {"CPU": 8, "GPU": 1, "accelerator_type:A10G": 1},
        "worker.cpu.decode": {"CPU": 16},
    }


@pytest.fixture(scope="session")
def expected_placeholders() -> set[str]:
    """The values a user must fill in before `ray up` (docs/cluster.md explains each)."""
    return {
        *(f"docker.run_options[{index}]" for index in range(2, 7)),  # the bucket of the five shared locations
        "available_node_types.head.cpu.node_config.ImageId",
        "available_node_types.worker.gpu.a10g.4cpu.node_config.ImageId",
        "available_node_types.worker.gpu.a10g.8cpu.node_config.ImageId",
        "available_node_types.worker.cpu.decode.node_config.ImageId",
        *(f"available_node_types.{t}.node_config.SecurityGroupIds[0]"
          for t in ("head.cpu", "worker.gpu.a10g.4cpu", "worker.gpu.a10g.8cpu", "worker.cpu.decode")),
    }
