"""check_cluster_config (dgnode.cluster.checks): the shipped cluster.yaml passes, and each
violation (exposed ports, a GPU head, too little GPU memory, inconsistent counts) is reported.

Fast (no Ray processes).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from dgnode import cluster as C


def _errors(findings: list[C.Finding]) -> list[C.Finding]:
    return [f for f in findings if f.severity == "error"]


# ---- Nothing public ------------------------------------------------------------------------


def test_nothing_is_open_to_the_world(config: dict, repo_root: Path) -> None:
    assert "security_group" not in config["provider"]  # the launcher creates no group (SSH 0.0.0.0/0)
    assert {name: t["node_config"]["SecurityGroupIds"] for name, t in config["available_node_types"].items()} == {
        name: ["sg-CHANGE-ME"] for name in config["available_node_types"]}
    assert C.world_open_ingress(config) == [] and C.launcher_made_groups(config) == []
    unpinned = copy.deepcopy(config)
    del unpinned["available_node_types"]["worker.cpu.decode"]["node_config"]["SecurityGroupIds"]
    errors = _errors(C.check_cluster_config(unpinned))
    assert [f.where for f in errors] == ["available_node_types.worker.cpu.decode.node_config"]
    assert "SSH open to 0.0.0.0/0" in errors[0].message
    commands = dict(C.iter_commands(config))
    assert not any(re.search(r"--dashboard-host[= ]+0\.0\.0\.0", c) for c in commands.values())
    mlflow = [c for c in config["head_start_ray_commands"] if "mlflow/server.sh" in c]
    assert len(mlflow) == 1 and "MLFLOW_HOST=127.0.0.1 " in mlflow[0]
    assert "--dashboard-host=127.0.0.1" in " ".join(config["head_start_ray_commands"])
    # The script the head runs defaults to localhost too.
    assert 'host="${MLFLOW_HOST:-127.0.0.1}"' in (repo_root / "mlflow" / "server.sh").read_text()
    assert "--env RAY_AUTH_MODE=token" in config["docker"]["run_options"]
    assert config["file_mounts"]["/home/ray/.ray/auth_token"] == "~/.ray/auth_token"


def test_shipped_config_has_no_errors_only_placeholder_warnings(config: dict, expected_placeholders: set) -> None:
    findings = C.check_cluster_config(config)
    assert _errors(findings) == []
    assert {f.where for f in findings} == expected_placeholders
    assert set(C.placeholders(config)) == expected_placeholders


def test_filled_in_config_has_no_findings_at_all(cluster_yaml: Path, tmp_path: Path) -> None:
    filled = tmp_path / "cluster.yaml"
    filled.write_text(
        cluster_yaml.read_text()
        .replace("s3://CHANGE-ME-bucket/dgnode", "s3://my-lab-bucket/dgnode")
        .replace("ami-CHANGE-ME", "ami-0123456789abcdef0")
        .replace("sg-CHANGE-ME", "sg-0123456789abcdef0")
    )
    assert C.check_cluster_config(C.load_cluster_config(filled)) == []


# ---- The checks catch each violation --------------------------------------------------------


def _set(config: dict, path: str, value) -> None:
    keys = path.split("/")
    target = config
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target.setdefault(key, {})
    last = keys[-1]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value


WORLD_8265 = [{"IpProtocol": "tcp", "FromPort": 8265, "ToPort": 8265, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
WORLD_SSH = [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
WORLD6_5000 = [{"IpProtocol": "tcp", "FromPort": 5000, "ToPort": 5000, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}]
MY_IP_ALL = [{"IpProtocol": "-1", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": "203.0.113.7/32"}]}]


@pytest.mark.parametrize(
    ("path", "value", "where", "message"),
    [
        ("available_node_types/head.cpu/resources", {"CPU": 4, "GPU": 1}, "available_node_types.head.cpu.resources",
         "the head offers 1 GPU(s)"),
        ("provider/security_group/IpPermissions", WORLD_8265, "provider.security_group.IpPermissions[0]",
         "opens 8265-8265/tcp to the whole internet"),
        ("provider/security_group/IpPermissions", WORLD6_5000, "provider.security_group.IpPermissions[0]",
         "opens 5000-5000/tcp to the whole internet"),
        ("docker/image", "rayproject/ray:2.59.0-py311-gpu", "docker.image",
         "runs Ray 2.59.0, but Ray 2.60.0 is installed here"),
        ("docker/image", "rayproject/ray:2.60.0-py311-cpu", "docker.image", "has no CUDA"),
        ("docker/run_options/0", "-p 8265:8265", "docker.run_options[0]", "publishes container ports"),
        ("available_node_types/worker.gpu.a10g.4cpu/resources", {"CPU": 4, "GPU": 2, "accelerator_type:A10G": 1},
         "available_node_types.worker.gpu.a10g.4cpu.resources", "declares 2 GPUs but g5.xlarge has 1"),
        ("available_node_types/worker.gpu.a10g.8cpu/resources", {"CPU": 16, "GPU": 1},
         "available_node_types.worker.gpu.a10g.8cpu.resources", "declares 16 CPUs but g5.2xlarge has 8 vCPUs"),
        ("available_node_types/worker.gpu.a10g.4cpu/resources", {"CPU": 4, "GPU": 1, "accelerator_type:L4": 1},
         "available_node_types.worker.gpu.a10g.4cpu.resources", "accelerator_type:L4 but g5.xlarge has A10G"),
        ("available_node_types/worker.gpu.a10g.4cpu/node_config/InstanceType", "g4dn.xlarge",
         "available_node_types.worker.gpu.a10g.4cpu.resources", "accelerator_type:A10G but g4dn.xlarge has T4"),
        ("available_node_types/worker.gpu.a10g.4cpu/min_workers", 5, "available_node_types.worker.gpu.a10g.4cpu",
         "min_workers 5 > max_workers 4"),
        ("max_workers", 0, "max_workers", "is below the sum of the types' min_workers"),
    ],
)
def test_check_reports_each_violation(config: dict, path: str, value, where: str, message: str) -> None:
    broken = copy.deepcopy(config)
    _set(broken, path, value)
    if path.endswith("min_workers"):
        _set(broken, "max_workers", 20)  # keep the global cap out of this case
    if path == "max_workers":
        _set(broken, "available_node_types/worker.cpu.decode/min_workers", 1)
    errors = _errors(C.check_cluster_config(broken))
    assert any(f.where == where and message in f.message for f in errors), errors


@pytest.mark.parametrize(
    ("index", "command", "message"),
    [
        (2, "ray start --head --port=6379 --dashboard-host=0.0.0.0 --num-gpus=0",
         "--dashboard-host=0.0.0.0 exposes the dashboard"),
        (2, "ray start --head --port=6379 --num-gpus 1", "starts the head with --num-gpus=1"),
        (3, "MLFLOW_HOST=0.0.0.0 MLFLOW_ARTIFACTS_DESTINATION=s3://b/a $HOME/dgnode/mlflow/server.sh",
         "MLflow bound to 0.0.0.0"),
        (3, "mlflow server --port 5000 --host 0.0.0.0 --artifacts-destination s3://b/a", "MLflow bound to 0.0.0.0"),
        (3, "MLFLOW_HOST=169.254.0.9 MLFLOW_ARTIFACTS_DESTINATION=s3://b/a mlflow/server.sh", "MLflow bound to 169.254.0.9"),
        (3, "MLFLOW_HOST=54.2.3.4 MLFLOW_ARTIFACTS_DESTINATION=s3://b/a mlflow/server.sh", "MLflow bound to 54.2.3.4"),
    ],
)
def test_check_reports_exposing_head_commands(config: dict, index: int, command: str, message: str) -> None:
    broken = copy.deepcopy(config)
    broken["head_start_ray_commands"][index] = command
    errors = _errors(C.check_cluster_config(broken))
    assert [(f.where, message in f.message) for f in errors] == [(f"head_start_ray_commands[{index}]", True)]


def test_check_allows_ssh_to_the_world_and_anything_to_one_ip(config: dict) -> None:
    relaxed = copy.deepcopy(config)
    relaxed["provider"]["security_group"] = {"GroupName": "dgnode-ray", "IpPermissions": WORLD_SSH + MY_IP_ALL}
    assert _errors(C.check_cluster_config(relaxed)) == []


def test_check_reports_gpu_memory_too_small_for_imagebind(config: dict) -> None:
    t4 = copy.deepcopy(config)
    t4["available_node_types"]["worker.gpu.a10g.4cpu"]["node_config"]["InstanceType"] = "g4dn.xlarge"
    t4["available_node_types"]["worker.gpu.a10g.4cpu"]["resources"] = {"CPU": 4, "GPU": 1, "accelerator_type:T4": 1}
    errors = _errors(C.check_cluster_config(t4))
    assert [(f.where, f.message) for f in errors] == [
        (
            "available_node_types.worker.gpu.a10g.4cpu",
            "extract.imagebind fits here by resource counts but needs 24 GB of GPU memory; T4 has 16 GB",
        )
    ]


def test_check_reports_a_demand_no_worker_type_can_host(config: dict) -> None:
    big_trial = C.StageDemand("tune.trial_worker", {"CPU": 12, "GPU": 1})
    errors = _errors(C.check_cluster_config(config, demands=[big_trial]))
    assert len(errors) == 1 and errors[0].where == "available_node_types"
    assert errors[0].message.startswith("no worker type can host tune.trial_worker (CPU=12, GPU=1): worker.gpu.a10g.4cpu: CPU=4, GPU=1, acc:A10G=1;")


def test_check_warns_about_an_unreachable_global_max_and_unknown_instances(config: dict) -> None:
    loose = copy.deepcopy(config)
    loose["max_workers"] = 25
    loose["available_node_types"]["worker.cpu.decode"]["node_config"]["InstanceType"] = "x9.mega"
    warnings = {(f.where, f.message) for f in C.check_cluster_config(loose) if f.severity == "warning"}
    assert ("max_workers", "25 exceeds the sum of the types' max_workers (10) and can never be reached") in warnings
    assert (
        "available_node_types.worker.cpu.decode.node_config.InstanceType",
        "'x9.mega' is not in dgnode's instance table: vCPUs, GPUs and GPU memory not checked",
    ) in warnings


def test_mlflow_may_bind_the_heads_private_address(config: dict) -> None:
    private = copy.deepcopy(config)
    private["head_start_ray_commands"][3] = private["head_start_ray_commands"][3].replace("MLFLOW_HOST=127.0.0.1",
                                                                                        "MLFLOW_HOST=10.0.1.23")
    assert "MLFLOW_HOST=10.0.1.23 " in private["head_start_ray_commands"][3]
    assert _errors(C.check_cluster_config(private)) == []
