"""cluster.yaml read as `ray up` reads it (dgnode.cluster.config): Ray's own schema, the resources
its node types offer, the cost at full scale, and loading errors naming file, line and key.

Fast (no Ray processes): Ray is imported only for its schema and config checks.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from dgnode import cluster as C
from dgnode.errors import InputError

GPU_TYPES = ("worker.gpu.a10g.4cpu", "worker.gpu.a10g.8cpu")


# ---- Ray's own validation ------------------------------------------------------------------


def test_cluster_yaml_passes_rays_json_schema_as_written(cluster_yaml: Path) -> None:
    import ray.autoscaler

    schema_path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    raw = yaml.safe_load(cluster_yaml.read_text())
    jsonschema.validate(raw, json.loads(schema_path.read_text()))


def test_cluster_yaml_passes_ray_up_validation(config: dict, expected_resources: dict) -> None:
    # load_cluster_config ran prepare_config + validate_config, as `ray up` does.
    assert config["cluster_name"] == "dgnode"
    assert config["provider"]["type"] == "aws"
    assert config["head_node_type"] == "head.cpu"
    assert set(config["available_node_types"]) == set(expected_resources)


def test_docker_image_matches_installed_ray(config: dict) -> None:
    import ray

    assert ray.__version__ == "2.60.0"
    assert config["docker"]["image"] == f"rayproject/ray:{ray.__version__}-py311-gpu"
    assert config["docker"]["container_name"] == "ray_container"


# ---- What the node types offer ---------------------------------------------------------------


def test_node_types_offer_exactly_the_declared_resources(config: dict, expected_resources: dict) -> None:
    assert C.node_type_resources(config) == expected_resources


def test_head_offers_no_gpu(config: dict) -> None:
    resources = C.node_type_resources(config)["head.cpu"]
    assert resources["GPU"] == 0
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--num-gpus=0" in head_start
    assert C.INSTANCE_TYPES[config["available_node_types"]["head.cpu"]["node_config"]["InstanceType"]].gpus == 0


def test_gpu_types_host_every_gpu_stage_demand_with_24_gb(config: dict) -> None:
    resources = C.node_type_resources(config)
    gpu_demands = [d for d in C.DEFAULT_STAGE_DEMANDS if d.resources.get("GPU", 0) > 0]
    assert [d.name for d in gpu_demands] == ["extract.imagebind", "tune.trial_worker"]
    for name in GPU_TYPES:
        node_type = config["available_node_types"][name]
        instance_name, instance = C.instance_type_of(node_type)
        assert resources[name]["GPU"] >= 1
        assert (instance.gpu_model, instance.gpu_memory_gib) == ("A10G", 24.0), instance_name
        for demand in gpu_demands:
            assert C.fits(demand.resources, resources[name]), (name, demand.name)
            assert instance.gpu_memory_gib >= demand.min_gpu_memory_gib
    decode = next(d for d in C.DEFAULT_STAGE_DEMANDS if d.name == "extract.decode")
    assert C.fits(decode.resources, resources["worker.cpu.decode"])
    assert not C.fits({"CPU": 1, "GPU": 1}, resources["head.cpu"])


def test_worker_counts_are_consistent(config: dict) -> None:
    workers = C.worker_node_types(config)
    assert {n: (t["min_workers"], t["max_workers"]) for n, t in workers.items()} == {
        "worker.gpu.a10g.4cpu": (0, 4),
        "worker.gpu.a10g.8cpu": (0, 2),
        "worker.cpu.decode": (0, 4),
    }
    assert config["max_workers"] == sum(t["max_workers"] for t in workers.values()) == 10
    assert config["available_node_types"]["head.cpu"].get("max_workers", 0) == 0
    assert config["idle_timeout_minutes"] == 5


def test_max_hourly_cost_at_full_scale(config: dict) -> None:
    # 1 x m6i.2xlarge + 4 x g5.xlarge + 2 x g5.2xlarge + 4 x c6i.4xlarge
    assert C.max_hourly_cost(config) == pytest.approx(0.384 + 4 * 1.006 + 2 * 1.212 + 4 * 0.68)
    assert C.max_hourly_cost(config) == 9.552


# ---- Loading errors name the file, line and key ---------------------------------------------


def test_load_reports_yaml_syntax_error_with_line(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text("cluster_name: x\nprovider:\n  type: aws\n  region: [us-west-2\n")
    with pytest.raises(InputError) as raised:
        C.load_cluster_config(path)
    assert raised.value.path == str(path) and raised.value.line == 5
    assert "not valid YAML" in str(raised.value)


def test_load_reports_schema_violation_with_key_and_line(cluster_yaml: Path, tmp_path: Path) -> None:
    text = cluster_yaml.read_text().replace('resources: {"CPU": 8, "GPU": 1,', 'resources: {"CPU": 8, "GPU": 0.5,')
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as raised:
        C.load_cluster_config(path)
    expected_line = 1 + text.splitlines().index('    resources: {"CPU": 8, "GPU": 0.5, "accelerator_type:A10G": 1}')
    assert raised.value.line == expected_line
    assert str(raised.value).startswith(
        f"{path}:{expected_line}: available_node_types.worker.gpu.a10g.8cpu.resources.GPU: 0.5 is not of type 'integer'"
    )


def test_load_reports_unknown_key(cluster_yaml: Path, tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(cluster_yaml.read_text().replace("upscaling_speed: 1.0", "upscaling_sped: 1.0"))
    with pytest.raises(InputError, match=r"Additional properties are not allowed \('upscaling_sped' was unexpected\)"):
        C.load_cluster_config(path)


def test_load_reports_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cluster config not found"):
        C.load_cluster_config(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(InputError, match=r"list.yaml:1: expected a mapping of cluster settings at the top level, got list"):
        C.load_cluster_config(tmp_path / "list.yaml")


def test_launchable_workers_are_the_worker_types_the_autoscaler_may_add(cluster_yaml: Path, tmp_path: Path) -> None:
    assert C.launchable_workers(tmp_path / "ray_bootstrap_config.yaml") is None  # a fixed cluster
    workers = C.launchable_workers(cluster_yaml)
    config = yaml.safe_load(cluster_yaml.read_text())
    assert set(workers) == set(C.worker_node_types(config)) and config["head_node_type"] not in workers
    for name, (resources, most) in workers.items():
        assert resources == C.node_type_resources(config)[name]
        assert most == config["available_node_types"][name]["max_workers"]
    assert any(resources.get("GPU", 0) >= 1 and most >= 1 for resources, most in workers.values())
    broken = tmp_path / "broken.yaml"
    broken.write_text("cluster_name: x\n")
    with pytest.raises(InputError, match="not an autoscaling config") as caught:
        C.launchable_workers(broken)
    assert str(broken) in str(caught.value)
