"""dgnode.cluster.locations: everything the nodes share lives in S3 under one prefix, nothing of it on
a node's disk, no keys in the file; each violation is one finding naming the key. Fast (no Ray)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from dgnode import cluster as C
from dgnode.cluster import cli
from dgnode.command import run_command


def _errors(findings: list[C.Finding]) -> list[C.Finding]:
    return [f for f in findings if f.severity == "error"]


def _option_index(config: dict, name: str) -> int:
    return next(i for i, o in enumerate(config["docker"]["run_options"]) if o.startswith(f"--env {name}="))


def test_the_shipped_layout_is_one_s3_prefix(config: dict) -> None:
    assert C.shared_location_findings(config) == []
    env = {name: value for name, (value, _) in C.docker_env(config).items()}
    assert set(C.SHARED_LOCATIONS) <= set(env)
    prefix = env[C.DATA_PREFIX]
    assert prefix == "s3://CHANGE-ME-bucket/dgnode"
    assert {name: env[name] for name in C.SHARED_LOCATIONS} == {
        "DGNODE_DATA_URI": prefix, "DGNODE_STORE": f"{prefix}/features", "DGNODE_RUNS": f"{prefix}/runs",
        "DGNODE_SEARCHES": f"{prefix}/searches", "IEMOCAP_ROOT": f"{prefix}/IEMOCAP_full_release"}
    mlflow = next(c for c in config["head_start_ray_commands"] if "mlflow/server.sh" in c)
    assert 'MLFLOW_ARTIFACTS_DESTINATION="$DGNODE_DATA_URI/mlflow-artifacts"' in mlflow
    # Nothing of the release is synced onto nodes; the workers reach S3 through their instance profile.
    commands = " ".join(c for _, c in C.iter_commands(config))
    assert "aws s3 sync" not in commands and "IEMOCAP_full_release" not in commands
    assert all(t["node_config"]["IamInstanceProfile"] == {"Name": "dgnode-worker"}
               for name, t in config["available_node_types"].items() if name != config["head_node_type"])


@pytest.mark.parametrize("name", sorted(C.SHARED_LOCATIONS))
def test_a_node_local_location_is_one_error_naming_its_key(config: dict, name: str) -> None:
    broken = copy.deepcopy(config)
    index = _option_index(broken, name)
    broken["docker"]["run_options"][index] = f"--env {name}=/mnt/dgnode/work/{name.lower()}"
    errors = _errors(C.check_cluster_config(broken))
    if name == C.DATA_PREFIX:  # MLflow's artifacts under it would land on the head's disk too
        assert [f.where for f in errors[1:]] == ["head_start_ray_commands[3]"]
        assert errors[1].message.startswith("MLflow artifacts go to /mnt/dgnode/work/dgnode_data_uri/mlflow-artifacts")
        errors = errors[:1]
    (error,) = errors
    assert error.where == f"docker.run_options[{index}]"
    assert error.message.startswith(f"{name}=/mnt/dgnode/work/{name.lower()} is a node-local path: every node would see "
                                    "its own copy (or none)")


def test_a_missing_location_a_foreign_prefix_and_a_uri_with_credentials(config: dict) -> None:
    broken = copy.deepcopy(config)
    options = broken["docker"]["run_options"]
    del options[_option_index(broken, "DGNODE_RUNS")]
    options[_option_index(broken, "DGNODE_SEARCHES")] = "--env DGNODE_SEARCHES=s3://other-bucket/searches"
    options[_option_index(broken, "DGNODE_STORE")] = "--env DGNODE_STORE=s3://KEY:SECRET@bucket/features"
    findings = C.shared_location_findings(broken)
    assert [(f.severity, f.where, f.message.split(":")[0]) for f in findings] == [
        ("error", f"docker.run_options[{_option_index(broken, 'DGNODE_STORE')}]", "DGNODE_STORE=s3"),
        ("error", "docker.run_options", "DGNODE_RUNS is not set"),
        ("warning", f"docker.run_options[{_option_index(broken, 'DGNODE_SEARCHES')}]", "DGNODE_SEARCHES=s3"),
    ]
    assert "is no s3://BUCKET/PREFIX URI (credentials never go into a URI)" in findings[0].message
    assert "is outside DGNODE_DATA_URI=s3://CHANGE-ME-bucket/dgnode" in findings[2].message


@pytest.mark.parametrize("command, message", [
    ("MLFLOW_HOST=127.0.0.1 mlflow/server.sh", "keeps its artifacts on the head's disk by default"),
    ("MLFLOW_HOST=127.0.0.1 MLFLOW_ARTIFACTS_DESTINATION=/mnt/dgnode/work/mlartifacts mlflow/server.sh",
     "MLflow artifacts go to /mnt/dgnode/work/mlartifacts, the head's disk"),
    ("mlflow server --host 127.0.0.1 --artifacts-destination ${DGNODE_WORK_DIR}/a",
     "MLflow artifacts go to /mnt/dgnode/work/a, the head's disk"),
])
def test_mlflow_artifacts_on_the_heads_disk_are_refused(config: dict, command: str, message: str) -> None:
    broken = copy.deepcopy(config)
    broken["head_start_ray_commands"][3] = command
    (error,) = _errors(C.check_cluster_config(broken))
    assert error.where == "head_start_ray_commands[3]" and message in error.message


def test_copying_a_prefix_onto_nodes_and_keys_in_the_file_are_refused(config: dict) -> None:
    broken = copy.deepcopy(config)
    broken["setup_commands"].append('aws s3 sync "$IEMOCAP_ROOT" /mnt/dgnode/IEMOCAP_full_release')
    broken["docker"]["run_options"].append("--env AWS_SECRET_ACCESS_KEY=abc")
    gpu = broken["available_node_types"]["worker.gpu.a10g.4cpu"]  # its setup list is shared by a YAML anchor: copy
    gpu["worker_setup_commands"] = [*gpu["worker_setup_commands"], "aws s3 cp --recursive s3://b/corpus /mnt/corpus"]
    del broken["available_node_types"]["worker.cpu.decode"]["node_config"]["IamInstanceProfile"]
    errors = {(f.where, f.message.split(";")[0]) for f in _errors(C.check_cluster_config(broken))}
    assert errors == {
        (f"setup_commands[{len(broken['setup_commands']) - 1}]",
         "copies a whole S3 prefix onto the node that runs it"),
        (f"available_node_types.worker.gpu.a10g.4cpu.worker_setup_commands"
         f"[{len(broken['available_node_types']['worker.gpu.a10g.4cpu']['worker_setup_commands']) - 1}]",
         "copies a whole S3 prefix onto the node that runs it"),
        (f"docker.run_options[{len(broken['docker']['run_options']) - 1}]",
         "AWS credentials do not go into the cluster config (it is uploaded, shared and versioned)"),
        ("available_node_types.worker.cpu.decode.node_config",
         "no IamInstanceProfile: its nodes could reach the S3 locations only with keys in the file"),
    }


def test_cli_check_refuses_a_node_local_store_in_one_line(cluster_yaml: Path, tmp_path: Path, capsys) -> None:
    local = tmp_path / "cluster.yaml"
    local.write_text(cluster_yaml.read_text().replace("--env DGNODE_STORE=s3://CHANGE-ME-bucket/dgnode/features",
                                                      "--env DGNODE_STORE=/mnt/dgnode/work/features"))
    assert run_command(cli.COMMANDS, ["cluster", "check", str(local)]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "error docker.run_options[3]: DGNODE_STORE=/mnt/dgnode/work/features is a node-local path" in out
    assert "1 error(s)" in out
