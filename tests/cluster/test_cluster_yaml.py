"""cluster.yaml against Ray's own launcher schema and against what dgnode's stages ask Ray for.

Fast (no Ray processes): Ray is imported only for its schema and config checks.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import jsonschema
import pytest
import yaml

from dgnode import cluster as C
from dgnode.errors import DgnodeError, InputError

GPU_TYPES = ("worker.gpu.a10g.4cpu", "worker.gpu.a10g.8cpu")
EXPECTED_RESOURCES = {
    "head.cpu": {"CPU": 4, "GPU": 0},
    "worker.gpu.a10g.4cpu": {"CPU": 4, "GPU": 1, "accelerator_type:A10G": 1},
    "worker.gpu.a10g.8cpu": {"CPU": 8, "GPU": 1, "accelerator_type:A10G": 1},
    "worker.cpu.decode": {"CPU": 16},
}
# The values a user must fill in before `ray up` (docs/cluster.md explains each).
EXPECTED_PLACEHOLDERS = {
    "docker.run_options[2]",
    "available_node_types.head.cpu.node_config.ImageId",
    "available_node_types.worker.gpu.a10g.4cpu.node_config.ImageId",
    "available_node_types.worker.gpu.a10g.8cpu.node_config.ImageId",
    "available_node_types.worker.cpu.decode.node_config.ImageId",
}


@pytest.fixture(scope="module")
def cluster_yaml(repo_root: Path) -> Path:
    return repo_root / "cluster.yaml"


@pytest.fixture(scope="module")
def config(cluster_yaml: Path) -> dict:
    return C.load_cluster_config(cluster_yaml)


def _errors(findings: list[C.Finding]) -> list[C.Finding]:
    return [f for f in findings if f.severity == "error"]


# ---- Ray's own validation ------------------------------------------------------------------


def test_cluster_yaml_passes_rays_json_schema_as_written(cluster_yaml: Path) -> None:
    import ray.autoscaler

    schema_path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    raw = yaml.safe_load(cluster_yaml.read_text())
    jsonschema.validate(raw, json.loads(schema_path.read_text()))


def test_cluster_yaml_passes_ray_up_validation(config: dict) -> None:
    # load_cluster_config ran prepare_config + validate_config, as `ray up` does.
    assert config["cluster_name"] == "dgnode"
    assert config["provider"]["type"] == "aws"
    assert config["head_node_type"] == "head.cpu"
    assert set(config["available_node_types"]) == set(EXPECTED_RESOURCES)


def test_docker_image_matches_installed_ray(config: dict) -> None:
    import ray

    assert ray.__version__ == "2.60.0"
    assert config["docker"]["image"] == f"rayproject/ray:{ray.__version__}-py311-gpu"
    assert config["docker"]["container_name"] == "ray_container"


# ---- What the node types offer ---------------------------------------------------------------


def test_node_types_offer_exactly_the_declared_resources(config: dict) -> None:
    assert C.node_type_resources(config) == EXPECTED_RESOURCES


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


# ---- Nothing public ------------------------------------------------------------------------


def test_nothing_is_open_to_the_world(config: dict, repo_root: Path) -> None:
    assert config["provider"]["security_group"] == {"GroupName": "dgnode-ray", "IpPermissions": []}
    assert C.world_open_ingress(config) == []
    commands = dict(C.iter_commands(config))
    assert not any(re.search(r"--dashboard-host[= ]+0\.0\.0\.0", c) for c in commands.values())
    mlflow = [c for c in config["head_start_ray_commands"] if "mlflow/server.sh" in c]
    assert len(mlflow) == 1 and "MLFLOW_HOST=127.0.0.1 " in mlflow[0]
    assert "--dashboard-host=127.0.0.1" in " ".join(config["head_start_ray_commands"])
    # The script the head runs defaults to localhost too.
    assert 'host="${MLFLOW_HOST:-127.0.0.1}"' in (repo_root / "mlflow" / "server.sh").read_text()
    assert "--env RAY_AUTH_MODE=token" in config["docker"]["run_options"]
    assert config["file_mounts"]["/home/ray/.ray/auth_token"] == "~/.ray/auth_token"


def test_shipped_config_has_no_errors_only_placeholder_warnings(config: dict) -> None:
    findings = C.check_cluster_config(config)
    assert _errors(findings) == []
    assert {f.where for f in findings} == EXPECTED_PLACEHOLDERS
    assert set(C.placeholders(config)) == EXPECTED_PLACEHOLDERS


def test_filled_in_config_has_no_findings_at_all(cluster_yaml: Path, tmp_path: Path) -> None:
    filled = tmp_path / "cluster.yaml"
    filled.write_text(
        cluster_yaml.read_text()
        .replace("s3://CHANGE-ME-bucket/dgnode", "s3://my-lab-bucket/dgnode")
        .replace("ami-CHANGE-ME", "ami-0123456789abcdef0")
    )
    assert C.check_cluster_config(C.load_cluster_config(filled)) == []


# ---- The checks catch each violation --------------------------------------------------------


def _set(config: dict, path: str, value) -> None:
    keys = path.split("/")
    target = config
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
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
        (3, "MLFLOW_HOST=0.0.0.0 $HOME/dgnode/mlflow/server.sh", "MLflow bound to 0.0.0.0"),
        (3, "mlflow server --port 5000 --host 0.0.0.0", "MLflow bound to 0.0.0.0"),
    ],
)
def test_check_reports_exposing_head_commands(config: dict, index: int, command: str, message: str) -> None:
    broken = copy.deepcopy(config)
    broken["head_start_ray_commands"][index] = command
    errors = _errors(C.check_cluster_config(broken))
    assert [(f.where, message in f.message) for f in errors] == [(f"head_start_ray_commands[{index}]", True)]


def test_check_allows_ssh_to_the_world_and_anything_to_one_ip(config: dict) -> None:
    relaxed = copy.deepcopy(config)
    relaxed["provider"]["security_group"]["IpPermissions"] = WORLD_SSH + MY_IP_ALL
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


# ---- The fake cluster's node types come from cluster.yaml ------------------------------------


def test_fake_node_types_are_built_from_cluster_yaml(cluster_yaml: Path) -> None:
    store = C.FAKE_OBJECT_STORE_BYTES
    assert C.fake_node_types(cluster_yaml, max_workers_per_type=2) == {
        "worker.gpu.a10g.4cpu": {
            "resources": {"CPU": 4, "GPU": 1, "accelerator_type:A10G": 1, "object_store_memory": store},
            "node_config": {},
            "min_workers": 0,
            "max_workers": 2,
            "labels": {C.NODE_TYPE_LABEL: "worker.gpu.a10g.4cpu"},
        },
        "worker.gpu.a10g.8cpu": {
            "resources": {"CPU": 8, "GPU": 1, "accelerator_type:A10G": 1, "object_store_memory": store},
            "node_config": {},
            "min_workers": 0,
            "max_workers": 2,
            "labels": {C.NODE_TYPE_LABEL: "worker.gpu.a10g.8cpu"},
        },
        "worker.cpu.decode": {
            "resources": {"CPU": 16, "object_store_memory": store},
            "node_config": {},
            "min_workers": 0,
            "max_workers": 2,
            "labels": {C.NODE_TYPE_LABEL: "worker.cpu.decode"},
        },
    }
    uncapped = C.fake_node_types(cluster_yaml)
    assert {n: t["max_workers"] for n, t in uncapped.items()} == {
        "worker.gpu.a10g.4cpu": 4, "worker.gpu.a10g.8cpu": 2, "worker.cpu.decode": 4,
    }


def test_fake_autoscaling_config_passes_rays_validation(config: dict) -> None:
    from ray.autoscaler._private.util import validate_config

    fake = C.fake_autoscaling_config(config, gcs_address="127.0.0.1:40000", max_workers_per_type=2)
    validate_config(fake)
    assert fake["provider"]["type"] == "fake_multinode"
    assert fake["provider"]["gcs_address"] == "127.0.0.1:40000"
    assert fake["head_node_type"] == C.FAKE_HEAD_NODE_TYPE
    assert fake["available_node_types"][C.FAKE_HEAD_NODE_TYPE] == {"resources": {"CPU": 4}, "node_config": {}, "max_workers": 0}
    assert fake["max_workers"] == 6 and fake["idle_timeout_minutes"] == 0.1


# ---- Stopping exactly one session -----------------------------------------------------------


def test_stop_session_ends_the_session_and_nothing_else() -> None:
    # A leader that ignores SIGTERM (as `ray start --block` drains first), a child that ignores
    # it too (so needs SIGKILL) and one that ends on SIGTERM.
    leader = subprocess.Popen(
        ["bash", "-c", "(trap '' TERM; exec sleep 301) & sleep 300 & trap '' TERM; wait"], start_new_session=True
    )
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        def commands() -> list[str]:
            return sorted(Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").strip()
                          for pid in C.session_processes(leader.pid) if pid != leader.pid)

        deadline = time.monotonic() + 10  # until both children have exec'd sleep (the trap is set)
        while commands() != ["sleep 300", "sleep 301"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert commands() == ["sleep 300", "sleep 301"]
        started = time.monotonic()
        assert C.stop_session(leader.pid, grace_s=2) == 1  # the TERM-ignoring child
        assert time.monotonic() - started < 6
        assert C.session_processes(leader.pid) == []
        leader.wait(timeout=5)  # already reaped by stop_session: no TimeoutExpired
        assert bystander.poll() is None
    finally:
        for proc in (leader, bystander):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    with pytest.raises(DgnodeError, match="it is this process's own session"):
        C.stop_session(os.getsid(0))


def test_stop_recorded_cluster_cleans_up_after_a_dead_owner(tmp_path: Path) -> None:
    import tempfile

    temp_dir = Path(tempfile.mkdtemp(prefix=C.TEMP_PREFIX, dir="/tmp"))
    # Like Ray's processes, the recorded head names its temp dir on its command line.
    head = subprocess.Popen(["bash", "-c", "sleep 300 & wait", str(temp_dir)], start_new_session=True)
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)
    pid_file = tmp_path / "head.pid"
    try:
        pid_file.write_text(f"{head.pid}\n{temp_dir}\n")
        assert C.stop_recorded_cluster(pid_file) == 0
        assert C.session_processes(head.pid) == []
        assert not temp_dir.exists() and not pid_file.exists()
        assert C.stop_recorded_cluster(pid_file) == 0  # nothing recorded: nothing to do

        # A PID whose session does not name the temp dir (a reused PID) is left alone, and a
        # directory this module did not create is never deleted.
        pid_file.write_text(f"{stranger.pid}\n{tmp_path}\n")
        assert C.stop_recorded_cluster(pid_file) == 0
        time.sleep(0.2)
        assert stranger.poll() is None and tmp_path.is_dir() and not pid_file.exists()
    finally:
        for proc in (head, stranger):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)
    pid_file.write_text("not-a-pid\n")
    with pytest.raises(InputError, match=r"head.pid:1: expected a PID on the first line, got 'not-a-pid'"):
        C.stop_recorded_cluster(pid_file)


def test_rehearsal_refuses_a_process_with_ray_initialised(monkeypatch: pytest.MonkeyPatch, cluster_yaml: Path) -> None:
    import ray

    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    with pytest.raises(DgnodeError, match="Ray is already initialised in this process"):
        C.rehearse_autoscaling(cluster_yaml)


# ---- CLI and docs ---------------------------------------------------------------------------


def test_cli_check_passes_the_shipped_config(cluster_yaml: Path, tmp_path: Path, capsys) -> None:
    from dgnode.cli import main

    out = tmp_path / "check.json"
    assert main(["cluster", "check", str(cluster_yaml), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["max_hourly_cost_usd"] == 9.552
    assert report["node_types"] == EXPECTED_RESOURCES
    assert {f["where"] for f in report["findings"]} == EXPECTED_PLACEHOLDERS
    assert "0 error(s), 5 warning(s)" in capsys.readouterr().out


def test_cli_check_fails_on_errors_and_bad_files(cluster_yaml: Path, tmp_path: Path, capsys) -> None:
    from dgnode.cli import main

    bad = tmp_path / "cluster.yaml"
    bad.write_text(cluster_yaml.read_text().replace("--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0"))
    assert main(["cluster", "check", str(bad)]) == 1
    assert "1 error(s)" in capsys.readouterr().out
    assert main(["cluster", "check", str(tmp_path / "missing.yaml")]) == 2
    assert "cluster config not found" in capsys.readouterr().err


def test_docs_cover_every_variable_and_access_path(repo_root: Path, config: dict) -> None:
    docs = (repo_root / "docs" / "cluster.md").read_text()
    variables = [o.split()[1].split("=")[0] for o in config["docker"]["run_options"] if o.startswith("--env ")]
    assert variables == [
        "DGNODE_DATA_URI", "IEMOCAP_ROOT", "IMAGEBIND_CHECKPOINT", "DGNODE_WORK_DIR", "MLFLOW_TRACKING_URI", "RAY_AUTH_MODE",
    ]
    for needle in [*variables, "DGNODE_PIP_SPEC", "ray up cluster.yaml", "ray dashboard cluster.yaml",
                   "ray attach cluster.yaml -p 5000", "RAY_AUTH_MODE=token ray job submit", "ray get-auth-token --generate",
                   "dgnode cluster check", "dgnode cluster rehearse", "dgnode-worker", "ray down cluster.yaml"]:
        assert needle in docs, needle
