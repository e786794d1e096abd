"""The Ray cluster behind dgnode: check ``cluster.yaml``, and rehearse its autoscaling locally.

``cluster.yaml`` (repository root) describes the AWS cluster for Ray's cluster launcher. This
module reads it the way ``ray up`` does (Ray's own defaults and JSON schema), checks it against
what dgnode's stages ask Ray for, and turns its node types into a local fake cluster on which the
autoscaler really launches and removes (simulated) nodes::

    config = load_cluster_config("cluster.yaml")
    for finding in check_cluster_config(config):
        print(finding)                      # "error: head_start_ray_commands[2]: ..."
    fake_node_types("cluster.yaml")         # {"worker.gpu.a10g.4cpu": {"resources": {...}, ...}}
    report = rehearse_autoscaling("cluster.yaml")   # GPU nodes come up, work runs, nodes go

Resource arithmetic. A node type offers the resources ``R_t = detect(instance) | declared``
(explicit ``resources`` override what the instance type implies, as in Ray's AWS provider). A
stage's unit of work (an actor or task) requests ``d``; it fits type ``t`` iff ``d[r] <= R_t[r]``
for every resource ``r``. Ray schedules by these counts only, so GPU *memory* is checked
separately, from :data:`INSTANCE_TYPES`.

The local rehearsal uses Ray's fake multi-node provider (``ray.autoscaler._private.fake_multi_node``):
every "node" is a real raylet on this machine with the logical resources of a cluster.yaml node
type, GPUs included. ``ray.cluster_utils.AutoscalingCluster`` wraps the same provider but cannot
be used here: its ``start``/``shutdown`` run ``ray stop --force``, which kills every Ray process of
the user on the machine, and the Ray 2.60 wheel lacks the ``example.yaml`` it builds its config
from. :class:`LocalAutoscalingCluster` starts the head in its own session on free ports and stops
exactly that session's processes.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import importlib.metadata
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from dgnode.errors import DgnodeError, InputError

DEFAULT_CLUSTER_YAML = "cluster.yaml"
PLACEHOLDER = "CHANGE-ME"
# Label the rehearsal puts on each fake node so work can be traced back to its cluster.yaml type.
NODE_TYPE_LABEL = "dgnode.io/node-type"
# The fake provider names the head's node type itself; the rehearsal config must use this name.
FAKE_HEAD_NODE_TYPE = "ray.head.default"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


# --------------------------------------------------------------------------------------------
# What instances offer and what stages ask for
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class InstanceType:
    """An EC2 instance type as the autoscaler and the stages see it.

    ``usd_per_hour`` is the on-demand Linux list price in us-east-1/us-west-2 when this table was
    written; prices change, so use it for rough budgets only (docs/cluster.md, "Costs").
    """

    vcpus: int
    memory_gib: float
    usd_per_hour: float
    gpus: int = 0
    gpu_model: str | None = None
    gpu_memory_gib: float = 0.0


INSTANCE_TYPES: Mapping[str, InstanceType] = {
    # General purpose (head).
    "m6i.xlarge": InstanceType(4, 16, 0.192),
    "m6i.2xlarge": InstanceType(8, 32, 0.384),
    "m6i.4xlarge": InstanceType(16, 64, 0.768),
    # Compute optimised (decoding).
    "c6i.2xlarge": InstanceType(8, 16, 0.34),
    "c6i.4xlarge": InstanceType(16, 32, 0.68),
    "c6i.8xlarge": InstanceType(32, 64, 1.36),
    # NVIDIA A10G, 24 GB.
    "g5.xlarge": InstanceType(4, 16, 1.006, 1, "A10G", 24.0),
    "g5.2xlarge": InstanceType(8, 32, 1.212, 1, "A10G", 24.0),
    "g5.4xlarge": InstanceType(16, 64, 1.624, 1, "A10G", 24.0),
    "g5.8xlarge": InstanceType(32, 128, 2.448, 1, "A10G", 24.0),
    "g5.12xlarge": InstanceType(48, 192, 5.672, 4, "A10G", 24.0),
    # NVIDIA L4, 24 GB.
    "g6.xlarge": InstanceType(4, 16, 0.8048, 1, "L4", 24.0),
    "g6.2xlarge": InstanceType(8, 32, 0.9776, 1, "L4", 24.0),
    # NVIDIA T4, 16 GB: too small for ImageBind-huge's bounded video batches.
    "g4dn.xlarge": InstanceType(4, 16, 0.526, 1, "T4", 16.0),
    "g4dn.2xlarge": InstanceType(8, 32, 0.752, 1, "T4", 16.0),
}


@dataclasses.dataclass(frozen=True)
class StageDemand:
    """One unit of a stage's work as Ray sees it: the resources of one actor or task."""

    name: str
    resources: Mapping[str, float]
    min_gpu_memory_gib: float = 0.0
    description: str = ""


# What the stages request per actor/task (sync with the extraction and tuning configs).
DEFAULT_STAGE_DEMANDS: tuple[StageDemand, ...] = (
    StageDemand("extract.decode", {"CPU": 1}, 0.0, "Ray Data task: decode and cut one segment"),
    StageDemand(
        "extract.imagebind",
        {"CPU": 1, "GPU": 1},
        24.0,
        "Ray Data actor: ImageBind-huge with bounded video batches (sized for 24 GB)",
    ),
    StageDemand("tune.trial_worker", {"CPU": 1, "GPU": 1}, 0.0, "Ray Train worker of one Tune trial (TrainSettings cpus_per_worker=1, gpus_per_worker=1)"),
)


@dataclasses.dataclass(frozen=True)
class Finding:
    """A problem (``error``: do not launch) or a reminder (``warning``) about a cluster config."""

    severity: Literal["error", "warning"]
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def load_cluster_config(path: str | Path) -> dict[str, Any]:
    """Read a cluster config and validate it as ``ray up`` would; return it as written.

    Validation merges the provider's defaults (``prepare_config``) and applies Ray's JSON schema
    and consistency rules (``validate_config``); a violation raises :class:`InputError` naming the
    file, the line and the key. The returned mapping is the file's own content (YAML anchors
    resolved), without Ray's defaults merged in.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("cluster config not found (expected a Ray cluster launcher YAML)", str(path)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read cluster config: {error}", str(path)) from None
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        raise InputError(f"not valid YAML: {problem}", str(path), mark.line + 1 if mark else None) from None
    if not isinstance(config, dict):
        raise InputError(
            f"expected a mapping of cluster settings at the top level, got {type(config).__name__}", str(path), 1
        )
    _validate_with_ray(config, path, text)
    return config


def _validate_with_ray(config: dict[str, Any], path: Path, text: str) -> None:
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    # prepare_config logs routine defaults ("setting max workers for head node type to 0").
    util_logger = logging.getLogger("ray.autoscaler._private.util")
    level = util_logger.level
    util_logger.setLevel(logging.WARNING)
    try:
        validate_config(prepare_config(copy.deepcopy(config)))
    except jsonschema.ValidationError as error:
        keys = list(error.absolute_path)
        where = _dotted(keys) or "config"
        raise InputError(
            f"{where}: {error.message} (Ray's cluster schema, ray/autoscaler/ray-schema.json)",
            str(path),
            _yaml_line(text, keys),
        ) from None
    except (ValueError, RuntimeError, AssertionError, KeyError, TypeError) as error:
        raise InputError(f"rejected by Ray's cluster launcher checks: {error}", str(path)) from None
    finally:
        util_logger.setLevel(level)


def _dotted(keys: Sequence[Any]) -> str:
    out = ""
    for key in keys:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def _yaml_line(text: str, keys: Sequence[Any]) -> int | None:
    """1-based line of the deepest of ``keys`` that exists in the YAML ``text``."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(key):
                    line, node = key_node.start_mark.line + 1, value_node
                    break
            else:
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _as_config(cluster_yaml: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(cluster_yaml, Mapping):
        return dict(cluster_yaml)
    return load_cluster_config(cluster_yaml)


# --------------------------------------------------------------------------------------------
# Node types and their resources
# --------------------------------------------------------------------------------------------


def worker_node_types(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The node types other than the head's, in file order."""
    head = config["head_node_type"]
    return {name: node_type for name, node_type in config["available_node_types"].items() if name != head}


def instance_type_of(node_type: Mapping[str, Any]) -> tuple[str | None, InstanceType | None]:
    """The node type's EC2 instance type name and its table entry (None when not in the table)."""
    name = (node_type.get("node_config") or {}).get("InstanceType")
    return name, INSTANCE_TYPES.get(name) if name else None


def node_type_resources(config: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Logical resources each node type offers Ray: detected from the instance, then declared.

    Detection gives ``CPU`` = vCPUs and, for GPU instances, ``GPU`` and
    ``accelerator_type:<model>`` = 1; the node type's ``resources`` override key by key.
    """
    out: dict[str, dict[str, float]] = {}
    for name, node_type in config["available_node_types"].items():
        _, instance = instance_type_of(node_type)
        resources: dict[str, float] = {}
        if instance is not None:
            resources["CPU"] = instance.vcpus
            if instance.gpus:
                resources["GPU"] = instance.gpus
                resources[f"accelerator_type:{instance.gpu_model}"] = 1
        resources.update(node_type.get("resources") or {})
        out[name] = resources
    return out


def fits(demand: Mapping[str, float], offered: Mapping[str, float]) -> bool:
    """Whether one unit of ``demand`` fits on an empty node offering ``offered``."""
    return all(amount <= offered.get(resource, 0) for resource, amount in demand.items() if amount > 0)


def max_hourly_cost(config: Mapping[str, Any]) -> float | None:
    """On-demand USD per hour with every worker type at its max_workers (None if a type is unknown)."""
    total = 0.0
    counts = {config["head_node_type"]: 1}
    counts.update({name: int(nt.get("max_workers", config.get("max_workers", 0))) for name, nt in worker_node_types(config).items()})
    for name, count in counts.items():
        _, instance = instance_type_of(config["available_node_types"][name])
        if instance is None:
            return None
        total += count * instance.usd_per_hour
    return round(total, 4)


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------

_FLAG_VALUE = r"(?:=|\s+)['\"]?([^\s'\";]+)"
_DASHBOARD_HOST = re.compile(r"--dashboard-host" + _FLAG_VALUE)
_NUM_GPUS = re.compile(r"--num-gpus" + _FLAG_VALUE)
_MLFLOW_HOST_ENV = re.compile(r"\bMLFLOW_HOST=['\"]?([^\s'\";]*)")
_MLFLOW_SERVER_HOST = re.compile(r"\bmlflow\s+server\b.*?\s(?:--host|-h)" + _FLAG_VALUE)
_DOCKER_PUBLISH = re.compile(r"(?:^|\s)(?:-p|--publish|--publish-all|-P)(?:[=\s]|$)")
_RAY_IMAGE = re.compile(r"^rayproject/ray(?:-ml)?:(?P<version>\d+\.\d+\.\d+)(?P<suffix>[-\w.]*)$")
_WORLD = frozenset({"0.0.0.0/0", "::/0"})
_COMMAND_LISTS = (
    "initialization_commands",
    "setup_commands",
    "head_setup_commands",
    "worker_setup_commands",
    "head_start_ray_commands",
    "worker_start_ray_commands",
)


def iter_commands(config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Every shell command in the config with where it is, e.g. ``("setup_commands[1]", "pip ...")``."""
    for key in _COMMAND_LISTS:
        for index, command in enumerate(config.get(key) or []):
            yield f"{key}[{index}]", str(command)
    for name, node_type in config.get("available_node_types", {}).items():
        for key in ("initialization_commands", "worker_setup_commands"):
            for index, command in enumerate(node_type.get(key) or []):
                yield f"available_node_types.{name}.{key}[{index}]", str(command)


def _head_commands(config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for where, command in iter_commands(config):
        if where.split("[")[0] in ("setup_commands", "head_setup_commands", "head_start_ray_commands"):
            yield where, command


def placeholders(config: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose value still contains the :data:`PLACEHOLDER` marker."""
    found: list[str] = []
    if isinstance(config, Mapping):
        for key, value in config.items():
            found += placeholders(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(config, list):
        for index, value in enumerate(config):
            found += placeholders(value, f"{prefix}[{index}]")
    elif isinstance(config, str) and PLACEHOLDER in config:
        found.append(prefix)
    return found


def world_open_ingress(config: Mapping[str, Any]) -> list[Finding]:
    """Security-group rules that admit the whole internet to anything but SSH (tcp/22)."""
    findings = []
    rules = ((config.get("provider") or {}).get("security_group") or {}).get("IpPermissions") or []
    for index, rule in enumerate(rules):
        ranges = [r.get("CidrIp") for r in rule.get("IpRanges") or []]
        ranges += [r.get("CidrIpv6") for r in rule.get("Ipv6Ranges") or []]
        if not _WORLD.intersection(ranges):
            continue
        protocol = str(rule.get("IpProtocol", "")).lower()
        ssh_only = protocol in ("tcp", "6") and rule.get("FromPort") == 22 and rule.get("ToPort") == 22
        if not ssh_only:
            ports = f"{rule.get('FromPort')}-{rule.get('ToPort')}/{protocol or '?'}"
            findings.append(
                Finding(
                    "error",
                    f"provider.security_group.IpPermissions[{index}]",
                    f"opens {ports} to the whole internet; only SSH (22) may be, and better only to your IP. "
                    "Reach the dashboard and MLflow through SSH port forwarding",
                )
            )
    return findings


def check_cluster_config(
    config: Mapping[str, Any],
    demands: Sequence[StageDemand] = DEFAULT_STAGE_DEMANDS,
    *,
    ray_version: str | None = None,
) -> list[Finding]:
    """Check that ``config`` serves dgnode's stages, keeps the head GPU-free and exposes nothing.

    Errors: a stage's demand fits no worker type; a GPU type whose GPU memory (by
    :data:`INSTANCE_TYPES`) is below what a demand that fits it needs; declared resources the
    instance does not have; a head that offers GPUs; max_workers below the per-type minima; a
    port other than SSH open to 0.0.0.0/0 or ::/0; the dashboard, MLflow or Docker ports bound
    beyond localhost; a Ray image whose version differs from the installed Ray (``ray_version``,
    default: the installed one). Warnings: unknown instance types, an unreachable global
    max_workers, a missing MLflow server or idle timeout, and values still marked CHANGE-ME.
    """
    ray_version = ray_version or importlib.metadata.version("ray")
    findings: list[Finding] = []

    def add(severity: Literal["error", "warning"], where: str, message: str) -> None:
        findings.append(Finding(severity, where, message))

    for key in ("available_node_types", "head_node_type"):
        if key not in config:
            add("error", key, "missing: dgnode's checks need explicit node types and a head node type")
    if findings:
        return findings
    head_name = config["head_node_type"]
    node_types = config["available_node_types"]
    resources = node_type_resources(config)
    workers = worker_node_types(config)

    # Declared resources must exist on the instance, and accelerator labels must be right.
    for name, node_type in node_types.items():
        instance_name, instance = instance_type_of(node_type)
        where = f"available_node_types.{name}"
        if instance is None:
            add("warning", f"{where}.node_config.InstanceType",
                f"{instance_name!r} is not in dgnode's instance table: vCPUs, GPUs and GPU memory not checked")
            continue
        offered = resources[name]
        if offered.get("CPU", 0) > instance.vcpus:
            add("error", f"{where}.resources", f"declares {offered['CPU']:g} CPUs but {instance_name} has {instance.vcpus} vCPUs")
        if offered.get("GPU", 0) > instance.gpus:
            add("error", f"{where}.resources", f"declares {offered['GPU']:g} GPUs but {instance_name} has {instance.gpus}")
        for resource in offered:
            if resource.startswith("accelerator_type:") and resource != f"accelerator_type:{instance.gpu_model}":
                add("error", f"{where}.resources",
                    f"{resource} but {instance_name} has {instance.gpu_model or 'no GPU'}")

    # The head never offers a GPU: GPU actors and trials must land on GPU workers.
    if resources[head_name].get("GPU", 0) > 0:
        add("error", f"available_node_types.{head_name}.resources",
            f"the head offers {resources[head_name]['GPU']:g} GPU(s); set \"GPU\": 0 so GPU work always goes to GPU workers")
    for where, command in iter_commands(config):
        if where.startswith("head_start_ray_commands"):
            for value in _NUM_GPUS.findall(command):
                if value != "0":
                    add("error", where, f"starts the head with --num-gpus={value}; the head must offer no GPU")

    # Every stage demand fits some worker type; GPU memory suffices wherever a GPU demand fits.
    for demand in demands:
        hosts = [name for name in workers if fits(demand.resources, resources[name])]
        if not hosts:
            add("error", "available_node_types",
                f"no worker type can host {demand.name} ({_format_resources(demand.resources)}): "
                f"{'; '.join(f'{n}: {_format_resources(resources[n])}' for n in workers) or 'no worker types'}")
        for name in hosts:
            _, instance = instance_type_of(node_types[name])
            if demand.min_gpu_memory_gib and instance is not None and instance.gpu_memory_gib < demand.min_gpu_memory_gib:
                add("error", f"available_node_types.{name}",
                    f"{demand.name} fits here by resource counts but needs {demand.min_gpu_memory_gib:g} GB of GPU memory; "
                    f"{instance.gpu_model or 'no GPU'} has {instance.gpu_memory_gib:g} GB")

    # Worker counts.
    head_max = node_types[head_name].get("max_workers", 0)
    if head_max:
        add("error", f"available_node_types.{head_name}.max_workers", f"is {head_max}; the head type must have 0")
    global_max = config.get("max_workers")
    per_type_max = {n: nt.get("max_workers", global_max) for n, nt in workers.items()}
    for name, node_type in workers.items():
        low, high = node_type.get("min_workers", 0), per_type_max[name]
        if high is not None and low > high:
            add("error", f"available_node_types.{name}", f"min_workers {low} > max_workers {high}")
    sum_min = sum(nt.get("min_workers", 0) for nt in workers.values())
    if global_max is None:
        add("warning", "max_workers", "not set: Ray's default (2) caps the whole cluster")
    else:
        if sum_min > global_max:
            add("error", "max_workers", f"{global_max} is below the sum of the types' min_workers ({sum_min})")
        if all(v is not None for v in per_type_max.values()):
            sum_max = sum(per_type_max.values())
            if global_max > sum_max:
                add("warning", "max_workers",
                    f"{global_max} exceeds the sum of the types' max_workers ({sum_max}) and can never be reached")
    if not config.get("idle_timeout_minutes"):
        add("warning", "idle_timeout_minutes", "not set: idle GPU workers are kept for Ray's default of 5 minutes")

    # Nothing public.
    findings += world_open_ingress(config)
    for where, command in iter_commands(config):
        for host in _DASHBOARD_HOST.findall(command):
            if host not in LOCAL_HOSTS:
                add("error", where, f"--dashboard-host={host} exposes the dashboard and job server; keep 127.0.0.1 and use `ray dashboard`")
        for host in _MLFLOW_HOST_ENV.findall(command) + _MLFLOW_SERVER_HOST.findall(command):
            if host not in LOCAL_HOSTS:
                add("error", where, f"MLflow bound to {host or '(empty)'}; bind it to 127.0.0.1 and use SSH port forwarding")
    docker = config.get("docker") or {}
    for key in ("run_options", "head_run_options", "worker_run_options"):
        for index, option in enumerate(docker.get(key) or []):
            if _DOCKER_PUBLISH.search(str(option)):
                add("error", f"docker.{key}[{index}]", f"{option!r} publishes container ports on the host's interfaces")
    if not any("mlflow/server.sh" in c or re.search(r"\bmlflow\s+server\b", c) for _, c in _head_commands(config)):
        add("warning", "head_start_ray_commands", "no MLflow server is started on the head (expected mlflow/server.sh)")

    # The image's Ray must be the Ray that launches and submits to the cluster.
    gpu_workers = [n for n in workers if resources[n].get("GPU", 0) > 0]
    for key in ("image", "head_image", "worker_image"):
        image = docker.get(key)
        if not image:
            continue
        match = _RAY_IMAGE.match(str(image))
        if match is None:
            add("warning", f"docker.{key}", f"{image!r} is not a rayproject/ray image: Ray version not checked")
            continue
        if match["version"] != ray_version:
            add("error", f"docker.{key}", f"{image!r} runs Ray {match['version']}, but Ray {ray_version} is installed here")
        if gpu_workers and key != "head_image" and not re.search(r"-(gpu|cu\d+)", match["suffix"]):
            add("error", f"docker.{key}", f"{image!r} has no CUDA, but {', '.join(gpu_workers)} are GPU types")

    for key in placeholders(config):
        add("warning", key, f"still contains {PLACEHOLDER}: fill it in before `ray up` (docs/cluster.md)")
    return findings


def _format_resources(resources: Mapping[str, float]) -> str:
    return ", ".join(f"{k.replace('accelerator_type:', 'acc:')}={v:g}" for k, v in resources.items() if v) or "nothing"


# --------------------------------------------------------------------------------------------
# The local fake cluster
# --------------------------------------------------------------------------------------------

FAKE_OBJECT_STORE_BYTES = 100 * 1024**2  # Ray's minimum is 75 MiB; fake nodes share this machine's RAM


def fake_node_types(
    cluster_yaml: str | Path | Mapping[str, Any],
    *,
    max_workers_per_type: int | None = None,
    object_store_memory: int = FAKE_OBJECT_STORE_BYTES,
) -> dict[str, dict[str, Any]]:
    """cluster.yaml's worker node types as Ray's fake multi-node provider wants them.

    Each type keeps its logical resources (CPU, GPU, ``accelerator_type:*``, custom ones, as
    :func:`node_type_resources` computes them) and its min/max worker counts; ``node_config``
    is emptied (nothing is launched in a cloud), ``object_store_memory`` is bounded, and the
    label :data:`NODE_TYPE_LABEL` names the type. ``max_workers_per_type`` caps the counts so a
    rehearsal fits on one machine.
    """
    config = _as_config(cluster_yaml)
    resources = node_type_resources(config)
    out: dict[str, dict[str, Any]] = {}
    for name, node_type in worker_node_types(config).items():
        offered = {k: int(v) for k, v in resources[name].items() if v}
        offered["object_store_memory"] = int(object_store_memory)
        high = int(node_type.get("max_workers", config.get("max_workers", 0)))
        if max_workers_per_type is not None:
            high = min(high, max_workers_per_type)
        fake: dict[str, Any] = {
            "resources": offered,
            "node_config": {},
            "min_workers": min(int(node_type.get("min_workers", 0)), high),
            "max_workers": high,
            "labels": {**(node_type.get("labels") or {}), NODE_TYPE_LABEL: name},
        }
        if "idle_timeout_s" in node_type:
            fake["idle_timeout_s"] = node_type["idle_timeout_s"]
        out[name] = fake
    return out


def fake_autoscaling_config(
    cluster_yaml: str | Path | Mapping[str, Any],
    *,
    gcs_address: str,
    idle_timeout_minutes: float = 0.1,
    max_workers_per_type: int | None = None,
    object_store_memory: int = FAKE_OBJECT_STORE_BYTES,
) -> dict[str, Any]:
    """A complete autoscaling config for the fake multi-node provider, shaped like cluster.yaml.

    The head type is renamed :data:`FAKE_HEAD_NODE_TYPE` (the provider tags the head with that
    name) and keeps cluster.yaml's head resources; worker types come from
    :func:`fake_node_types`; ``gcs_address`` points fake nodes at this cluster's GCS instead of
    the default port 6379, which another Ray on the machine may hold.
    """
    config = _as_config(cluster_yaml)
    workers = fake_node_types(config, max_workers_per_type=max_workers_per_type, object_store_memory=object_store_memory)
    head_resources = {k: int(v) for k, v in node_type_resources(config)[config["head_node_type"]].items() if v}
    global_max = min(int(config.get("max_workers", 2)), sum(t["max_workers"] for t in workers.values()))
    return {
        "cluster_name": f"{config.get('cluster_name', 'default')}-rehearsal",
        "max_workers": global_max,
        "upscaling_speed": config.get("upscaling_speed", 1.0),
        "idle_timeout_minutes": idle_timeout_minutes,
        "provider": {
            "type": "fake_multinode",
            "use_node_id_as_ip": True,  # all fake nodes share one IP
            "disable_node_updaters": True,  # no SSH, no setup commands
            "disable_launch_config_check": True,
            "gcs_address": gcs_address,
        },
        "auth": {},
        "docker": {},
        "available_node_types": {
            FAKE_HEAD_NODE_TYPE: {"resources": head_resources, "node_config": {}, "max_workers": 0},
            **workers,
        },
        "head_node_type": FAKE_HEAD_NODE_TYPE,
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
        **{key: [] for key in _COMMAND_LISTS},
    }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def _process_state(pid: int) -> str | None:
    """The state letter of ``pid`` from ``/proc/<pid>/stat`` (R, S, Z, ...), None when gone."""
    try:
        # "pid (comm) state ...": comm may hold spaces and parentheses.
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def session_processes(session_id: int) -> list[int]:
    """PIDs of the running (not zombie) processes in session ``session_id`` (Linux ``/proc``)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            if os.getsid(pid) != session_id:
                continue
        except (ProcessLookupError, PermissionError):
            continue
        if _process_state(pid) not in (None, "Z", "X"):
            pids.append(pid)
    return pids


def stop_session(session_id: int, grace_s: float = 15.0, last: Sequence[str] = ("gcs_server",)) -> int:
    """End session ``session_id``: SIGTERM its processes, SIGKILL those left after ``grace_s``.

    Only processes of that session are signalled (a Ray head started with
    ``start_new_session=True`` keeps its GCS, raylets, workers and the fake nodes in its
    session), as ``ray stop`` does for all of Ray. Processes whose command line contains one of
    ``last`` get SIGTERM in a second wave: a raylet unregisters from the GCS when terminated and
    waits about 10 s if the GCS is already gone. The session leader (``ray start --block``) goes
    last and by SIGKILL: on SIGTERM it would first wait up to 30 s for a drain of the processes
    already stopped. Returns how many processes other than the leader needed SIGKILL.
    """
    if session_id == os.getsid(0):
        raise DgnodeError(f"refusing to stop session {session_id}: it is this process's own session")
    deadline = time.monotonic() + grace_s

    def members(final_wave: bool) -> list[int]:
        pids = [pid for pid in session_processes(session_id) if pid != session_id]
        if final_wave:
            return pids
        return [pid for pid in pids if not any(marker in _cmdline(pid) for marker in last)]

    for final_wave in (False, True):
        for pid in members(final_wave):
            _signal(pid, signal.SIGTERM)
        while time.monotonic() < deadline and members(final_wave):
            time.sleep(0.1)
    leftovers = members(True)
    for pid in leftovers:
        _signal(pid, signal.SIGKILL)
    if session_id in session_processes(session_id):  # still the leader, not a reused PID
        _signal(session_id, signal.SIGKILL)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and (_alive(session_id) or session_processes(session_id)):
        time.sleep(0.1)
    return len(leftovers)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs; reaps it when it is this process's exited child."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
    except ChildProcessError:
        pass
    return _process_state(pid) not in (None, "Z", "X")


TEMP_PREFIX = "dgray-"


def stop_recorded_cluster(pid_file: str | Path) -> int:
    """Stop a :class:`LocalAutoscalingCluster` from its PID file, after its owner died.

    Ends the head's session (only if its processes still name the recorded temp dir), removes
    that temp dir (only one this module created) and the PID file; returns how many processes
    needed SIGKILL. A missing PID file means the owner already stopped the cluster (returns 0).
    """
    path = Path(pid_file)
    try:
        lines = path.read_text().split("\n")
    except FileNotFoundError:
        return 0
    try:
        pid = int(lines[0])
    except ValueError:
        raise InputError(f"expected a PID on the first line, got {lines[0]!r}", str(path), 1) from None
    temp_dir = Path(lines[1]) if len(lines) > 1 and lines[1] else None
    ours = temp_dir is not None and temp_dir.parent == Path("/tmp") and temp_dir.name.startswith(TEMP_PREFIX)
    killed = 0
    # Signal the session only if it is still that cluster's (its processes name the temp dir),
    # not a later process that happens to reuse the PID.
    if ours and any(str(temp_dir) in _cmdline(member) for member in session_processes(pid)):
        killed = stop_session(pid)
    if ours:
        shutil.rmtree(temp_dir, ignore_errors=True)
    path.unlink(missing_ok=True)
    return killed


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


class LocalAutoscalingCluster:
    """cluster.yaml's node types on this machine: a Ray head whose autoscaler launches fake nodes.

    The head runs ``ray start --head --block`` in a new session, on free ports, with a private
    temp dir (kept short: Ray's Unix sockets live there) and token authentication with a fresh
    token of its own (``~/.ray`` is not touched). :meth:`stop` ends that session's processes and
    nothing else. Connect a driver with ``ray.init(address=cluster.address)`` in a process whose
    environment holds :meth:`driver_env`.
    """

    def __init__(
        self,
        cluster_yaml: str | Path | Mapping[str, Any],
        *,
        idle_timeout_minutes: float = 0.1,
        max_workers_per_type: int | None = 2,
        object_store_memory: int = FAKE_OBJECT_STORE_BYTES,
        startup_timeout_s: float = 120.0,
        pid_file: str | Path | None = None,
        log_dir: str | Path | None = None,
    ) -> None:
        self.cluster_config = _as_config(cluster_yaml)
        self.idle_timeout_minutes = idle_timeout_minutes
        self.max_workers_per_type = max_workers_per_type
        self.object_store_memory = object_store_memory
        self.startup_timeout_s = startup_timeout_s
        self.pid_file = Path(pid_file) if pid_file else None
        self.log_dir = Path(log_dir) if log_dir else None
        self.token = secrets.token_hex(16)
        self.address: str | None = None
        self.temp_dir: Path | None = None
        self.autoscaling_config: dict[str, Any] | None = None
        self._process: subprocess.Popen | None = None
        self._stopped = False

    @property
    def head_pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def log_path(self) -> Path:
        assert self.temp_dir is not None, "start() first"
        return self.temp_dir / "head.log"

    def driver_env(self) -> dict[str, str]:
        """Environment a driver process needs to connect (address and token)."""
        assert self.address is not None, "start() first"
        return {"RAY_ADDRESS": self.address, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}

    def start(self) -> str:
        """Start the head and its autoscaler; return the GCS address once Ray is up."""
        from ray._private.services import get_node_ip_address

        if self._process is not None:
            raise DgnodeError("this local cluster is already started")
        self.temp_dir = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir="/tmp"))
        node_ip = get_node_ip_address()
        port = _free_port()
        self.autoscaling_config = fake_autoscaling_config(
            self.cluster_config,
            gcs_address=f"{node_ip}:{port}",
            idle_timeout_minutes=self.idle_timeout_minutes,
            max_workers_per_type=self.max_workers_per_type,
            object_store_memory=self.object_store_memory,
        )
        config_path = self.temp_dir / "autoscaling.json"
        config_path.write_text(json.dumps(self.autoscaling_config, indent=1))
        head = dict(self.autoscaling_config["available_node_types"][FAKE_HEAD_NODE_TYPE]["resources"])
        command = [
            sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
            f"--node-ip-address={node_ip}",
            f"--port={port}",
            f"--ray-client-server-port={_free_port()}",
            f"--dashboard-port={_free_port()}",
            f"--dashboard-agent-listen-port={_free_port()}",
            "--dashboard-host=127.0.0.1",
            "--include-dashboard=false",
            f"--autoscaling-config={config_path}",
            f"--temp-dir={self.temp_dir / 'ray'}",
            f"--num-cpus={head.pop('CPU', 0)}",
            f"--num-gpus={head.pop('GPU', 0)}",
            f"--object-store-memory={max(self.object_store_memory, 2 * FAKE_OBJECT_STORE_BYTES)}",
            "--disable-usage-stats",
        ]
        if head:
            command.append(f"--resources={json.dumps(head)}")
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env.update(
            RAY_FAKE_CLUSTER="1",  # lets the fake provider start and pins the head's node id
            AUTOSCALER_UPDATE_INTERVAL_S="1",  # decide every second instead of every 5
            AUTOSCALER_METRIC_PORT=str(_free_port()),  # not the fixed 44217 another Ray may hold
            RAY_USAGE_STATS_ENABLED="0",
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN=self.token,
        )
        log = open(self.log_path, "wb")
        try:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
            )
        finally:
            log.close()
        if self.pid_file is not None:
            # Read by stop_recorded_cluster() if this process dies without stop().
            self.pid_file.write_text(f"{self._process.pid}\n{self.temp_dir}\n")
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = self._log_tail()
                self.stop()
                raise DgnodeError(f"the local Ray head exited with code {self._process.returncode}:\n{tail}")
            if b"Ray runtime started" in self.log_path.read_bytes():
                self.address = f"{node_ip}:{port}"
                return self.address
            time.sleep(0.25)
        tail = self._log_tail()
        self.stop()
        raise DgnodeError(f"the local Ray head did not start within {self.startup_timeout_s:g} s:\n{tail}")

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> int:
        """Stop the head, its autoscaler and every fake node; return how many needed SIGKILL."""
        killed = 0
        if self._process is not None and not self._stopped:
            self._stopped = True
            killed = stop_session(self._process.pid)
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)
        if self.temp_dir is not None:
            if self.log_dir is not None:
                self._keep_logs(self.log_dir)
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        return killed

    def _keep_logs(self, log_dir: Path) -> None:
        """Copy the head's log and the autoscaler's logs out of the temp dir before it goes."""
        assert self.temp_dir is not None
        log_dir.mkdir(parents=True, exist_ok=True)
        wanted = [self.log_path, self.temp_dir / "autoscaling.json"]
        wanted += sorted((self.temp_dir / "ray").glob("session_*/logs/monitor*"))
        for source in wanted:
            if source.is_file():
                shutil.copy2(source, log_dir / source.name)

    def __enter__(self) -> LocalAutoscalingCluster:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# The rehearsal: stage-shaped demand on the local cluster
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class StageRun:
    """One stage-shaped workload of a rehearsal and where Ray ran it."""

    name: str
    shape: str
    resources: dict[str, float]
    units: int
    units_done: int = 0
    node_types_used: dict[str, int] = dataclasses.field(default_factory=dict)  # type -> units
    gpu_ids_seen: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0


@dataclasses.dataclass
class RehearsalReport:
    """What the autoscaler did while stage-shaped work ran on cluster.yaml's node types.

    Times are seconds: ``scale_up_s`` from the first GPU demand to the first GPU worker alive,
    ``scale_down_s`` from the end of the work to the last worker gone (None: not within the
    wait). ``launched`` counts distinct nodes per type, ``peak`` the most alive at once;
    ``nodes`` lists each worker with the resources Ray saw on it and ``up_s``/``down_s``
    relative to the first demand (``down_s`` None: still alive). ``startup_s`` is head start plus driver connect,
    ``stop_s`` the shutdown; ``killed_at_stop`` counts processes that needed SIGKILL.
    """

    cluster_yaml: str
    node_types: dict[str, dict[str, float]]
    head_resources: dict[str, float]
    idle_timeout_minutes: float
    stages: list[StageRun]
    launched: dict[str, int]
    peak: dict[str, int]
    head_gpus_max: float
    scale_up_s: float | None
    scale_down_s: float | None
    workers_left: int
    head_pid: int | None
    nodes: list[dict[str, Any]]
    startup_s: float
    stop_s: float
    total_s: float
    killed_at_stop: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _schedulable(resources: Mapping[str, float]) -> dict[str, float]:
    """The resources a node type declares (CPU, GPU, accelerator), without Ray's per-node extras."""
    kept = [k for k in resources if k in ("CPU", "GPU") or k.startswith("accelerator_type:")]
    return {k: resources[k] for k in sorted(kept, key=lambda k: (k != "CPU", k != "GPU", k))}


class _NodeTracker:
    """Polls ``ray.nodes()`` in a thread and remembers when each node was alive, and its type."""

    def __init__(self, head_type: str, signatures: Mapping[str, Mapping[str, float]], interval_s: float = 0.5) -> None:
        self.head_type = head_type
        self.signatures = signatures
        self.interval_s = interval_s
        self.types: dict[str, str] = {}  # node id -> node type
        self.alive: dict[str, bool] = {}
        self.first_seen: dict[str, float] = {}
        self.last_seen: dict[str, float] = {}
        self.gone_at: dict[str, float] = {}
        self.offered: dict[str, dict[str, float]] = {}  # node id -> CPU/GPU/accelerator resources
        self.peak: dict[str, int] = {}
        self.head_gpus_max = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dgnode-node-tracker", daemon=True)

    def start(self) -> None:
        self.poll()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - a failed poll (e.g. at shutdown) is retried or ends
                if self._stop.is_set():
                    return

    def _type_of(self, node: Mapping[str, Any]) -> str:
        labels = node.get("Labels") or {}
        if NODE_TYPE_LABEL in labels:
            return labels[NODE_TYPE_LABEL]
        if "node:__internal_head__" in node.get("Resources", {}):
            return self.head_type
        offered = _schedulable(node.get("Resources", {}))
        matches = [name for name, sig in self.signatures.items() if {k: v for k, v in sig.items() if v} == offered]
        return matches[0] if len(matches) == 1 else "unknown"

    def poll(self) -> None:
        import ray

        now = time.monotonic()
        nodes = ray.nodes()
        with self._lock:
            counts: dict[str, int] = {}
            for node in nodes:
                node_id = node["NodeID"]
                node_type = self.types.setdefault(node_id, self._type_of(node))
                self.offered.setdefault(node_id, _schedulable(node.get("Resources", {})))
                self.alive[node_id] = bool(node.get("Alive"))
                if not node.get("Alive"):
                    self.gone_at.setdefault(node_id, now)
                    continue
                self.first_seen.setdefault(node_id, now)
                self.last_seen[node_id] = now
                counts[node_type] = counts.get(node_type, 0) + 1
                if node_type == self.head_type:
                    self.head_gpus_max = max(self.head_gpus_max, float(node.get("Resources", {}).get("GPU", 0)))
            for node_type, count in counts.items():
                self.peak[node_type] = max(self.peak.get(node_type, 0), count)

    def workers_alive(self) -> list[str]:
        with self._lock:
            return [n for n, alive in self.alive.items() if alive and self.types[n] != self.head_type]

    def type_of_node(self, node_id: str) -> str:
        with self._lock:
            return self.types.get(node_id, "unknown")

    def first_worker_seen(self, gpu_types: Sequence[str]) -> float | None:
        with self._lock:
            times = [t for n, t in self.first_seen.items() if self.types[n] in gpu_types]
        return min(times) if times else None

    def timeline(self, origin: float) -> list[dict[str, Any]]:
        """Each worker node: its type and when it was first seen alive and first seen dead."""
        with self._lock:
            rows = []
            for node_id, up in sorted(self.first_seen.items(), key=lambda item: item[1]):
                if self.types[node_id] == self.head_type:
                    continue
                down = self.gone_at.get(node_id)
                rows.append({
                    "node_type": self.types[node_id],
                    "resources": self.offered.get(node_id, {}),
                    "up_s": round(up - origin, 2),
                    "down_s": round(down - origin, 2) if down is not None else None,
                })
            return rows

    def launched(self) -> dict[str, int]:
        with self._lock:
            out: dict[str, int] = {}
            for node_id, node_type in self.types.items():
                if node_type != self.head_type:
                    out[node_type] = out.get(node_type, 0) + 1
            return out


def _use_token_auth(env: Mapping[str, str]) -> None:
    """Adopt a cluster's address and token in this process, after ``import ray``.

    Ray reads RAY_AUTH_MODE into its cached config and the token into a cached loader when it is
    imported; both are refreshed here, as ``ray.init`` does when it enables token auth itself.
    """
    from ray._raylet import AuthenticationTokenLoader, Config

    os.environ.update(env)
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _demand(demands: Sequence[StageDemand], name: str) -> StageDemand:
    for demand in demands:
        if demand.name == name:
            return demand
    raise DgnodeError(f"no stage demand named {name!r} (have: {', '.join(d.name for d in demands)})")


def _ray_options(resources: Mapping[str, float]) -> dict[str, Any]:
    """A demand's resources as ``num_cpus`` / ``num_gpus`` / ``resources`` keyword arguments."""
    options: dict[str, Any] = {"num_cpus": resources.get("CPU", 0), "num_gpus": resources.get("GPU", 0)}
    custom = {k: v for k, v in resources.items() if k not in ("CPU", "GPU")}
    if custom:
        options["resources"] = custom
    return options


def _run_extraction_shape(stage: StageRun, max_actors: int, tracker: _NodeTracker) -> None:
    """Ray Data over ``stage.units`` rows with a GPU actor pool, as the extraction stage runs."""
    import numpy as np
    import ray
    import ray.data

    class EmbeddingStub:
        """Stands in for the ImageBind actor: reports where it runs instead of embedding."""

        def __init__(self) -> None:
            self.node_id = ray.get_runtime_context().get_node_id()
            self.gpu_ids = ",".join(str(g) for g in ray.get_gpu_ids())

        def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            time.sleep(0.2)  # some "work", so the pool has a reason to grow
            n = len(batch["id"])
            return {"id": batch["id"], "node_id": np.array([self.node_id] * n), "gpu_ids": np.array([self.gpu_ids] * n)}

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    options = _ray_options(stage.resources)
    # Few read blocks: the read tasks then fit on the head's CPUs and the demand stays GPU-shaped.
    dataset = ray.data.range(stage.units, override_num_blocks=max(1, stage.units // 16)).map_batches(
        EmbeddingStub,
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max_actors),
        batch_size=4,
        **options,
    )
    for row in dataset.iter_rows():
        stage.units_done += 1
        node_type = tracker.type_of_node(row["node_id"])
        stage.node_types_used[node_type] = stage.node_types_used.get(node_type, 0) + 1
        if row["gpu_ids"] not in stage.gpu_ids_seen:
            stage.gpu_ids_seen.append(str(row["gpu_ids"]))


def _run_trial_shape(stage: StageRun, tracker: _NodeTracker, timeout_s: float) -> None:
    """``stage.units`` concurrent trial workers, each holding the trial's resources briefly."""
    import ray

    @ray.remote(max_retries=0)
    def trial_worker(seconds: float) -> tuple[str, str]:
        time.sleep(seconds)
        return ray.get_runtime_context().get_node_id(), ",".join(str(g) for g in ray.get_gpu_ids())

    refs = [trial_worker.options(**_ray_options(stage.resources)).remote(1.0) for _ in range(stage.units)]
    for node_id, gpu_ids in ray.get(refs, timeout=timeout_s):
        stage.units_done += 1
        node_type = tracker.type_of_node(node_id)
        stage.node_types_used[node_type] = stage.node_types_used.get(node_type, 0) + 1
        if gpu_ids not in stage.gpu_ids_seen:
            stage.gpu_ids_seen.append(gpu_ids)


def rehearse_autoscaling(
    cluster_yaml: str | Path = DEFAULT_CLUSTER_YAML,
    *,
    demands: Sequence[StageDemand] = DEFAULT_STAGE_DEMANDS,
    rows: int = 32,
    max_actors: int = 2,
    trials: int = 2,
    idle_timeout_minutes: float = 0.1,
    max_workers_per_type: int = 2,
    scale_down_timeout_s: float = 120.0,
    stage_timeout_s: float = 240.0,
    pid_file: str | Path | None = None,
    log_dir: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> RehearsalReport:
    """Run extraction- and tuning-shaped GPU work on a local cluster typed like ``cluster_yaml``.

    1. extraction: Ray Data ``map_batches`` over ``rows`` rows with
       ``ActorPoolStrategy(min_size=1, max_size=max_actors)`` and the resources of the
       ``extract.imagebind`` demand (``num_gpus=1``): the autoscaler must add GPU workers;
    2. tuning: ``trials`` concurrent tasks with the ``tune.trial_worker`` resources;
    3. idle: wait up to ``scale_down_timeout_s`` for every worker to be removed after
       ``idle_timeout_minutes``.

    Runs the driver in this process, which must not have Ray initialised (use
    ``dgnode cluster rehearse`` from anywhere else). The cluster is stopped on return or error;
    ``log_dir`` keeps the head's and the autoscaler's logs.
    """
    import ray

    if ray.is_initialized():
        raise DgnodeError("Ray is already initialised in this process; run the rehearsal in a fresh one (`dgnode cluster rehearse`)")
    say = log or (lambda message: None)
    config = load_cluster_config(cluster_yaml) if not isinstance(cluster_yaml, Mapping) else dict(cluster_yaml)
    resources = node_type_resources(config)
    head_type = config["head_node_type"]
    gpu_types = [n for n in worker_node_types(config) if resources[n].get("GPU", 0) > 0]
    if not gpu_types:
        raise DgnodeError(f"{cluster_yaml}: no GPU worker types to rehearse")
    extraction = _demand(demands, "extract.imagebind")
    tuning = _demand(demands, "tune.trial_worker")
    stages = [
        StageRun("extract.imagebind", f"ray.data map_batches, ActorPoolStrategy(1..{max_actors})", dict(extraction.resources), rows),
        StageRun("tune.trial_worker", f"{trials} concurrent trial workers", dict(tuning.resources), trials),
    ]
    started = time.monotonic()
    cluster = LocalAutoscalingCluster(
        config,
        idle_timeout_minutes=idle_timeout_minutes,
        max_workers_per_type=max_workers_per_type,
        pid_file=pid_file,
        log_dir=log_dir,
    )
    saved_env = {k: os.environ.get(k) for k in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    tracker: _NodeTracker | None = None
    killed = 0
    try:
        say("starting the local head (fake multi-node provider)")
        address = cluster.start()
        _use_token_auth(cluster.driver_env())
        ray.init(address=address, log_to_driver=False, logging_level="WARNING")
        tracker = _NodeTracker(head_type, resources)
        tracker.start()
        demand_at = time.monotonic()
        startup_s = round(demand_at - started, 2)
        for stage in stages:
            say(f"running {stage.name}: {stage.shape}, {_format_resources(stage.resources)} each")
            stage_started = time.monotonic()
            if stage.name == "extract.imagebind":
                _run_extraction_shape(stage, max_actors, tracker)
            else:
                _run_trial_shape(stage, tracker, stage_timeout_s)
            stage.seconds = round(time.monotonic() - stage_started, 2)
        work_done = time.monotonic()
        first_gpu = tracker.first_worker_seen(gpu_types)
        say(f"work done; waiting for idle workers to be removed (idle timeout {idle_timeout_minutes:g} min)")
        scale_down_s = None
        while time.monotonic() - work_done < scale_down_timeout_s:
            tracker.poll()
            if not tracker.workers_alive():
                scale_down_s = round(time.monotonic() - work_done, 2)
                break
            time.sleep(0.5)
        tracker.stop()
        workers_left = len(tracker.workers_alive())
    finally:
        if tracker is not None:
            tracker.stop()
        if ray.is_initialized():
            ray.shutdown()
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        say("stopping the local cluster")
        stopping = time.monotonic()
        killed = cluster.stop()
        stop_s = round(time.monotonic() - stopping, 2)
    return RehearsalReport(
        cluster_yaml=str(cluster_yaml) if not isinstance(cluster_yaml, Mapping) else "(mapping)",
        node_types={n: dict(r) for n, r in resources.items() if n != head_type},
        head_resources=dict(resources[head_type]),
        idle_timeout_minutes=idle_timeout_minutes,
        stages=stages,
        launched=tracker.launched(),
        peak={k: v for k, v in tracker.peak.items() if k != head_type},
        head_gpus_max=tracker.head_gpus_max,
        scale_up_s=round(first_gpu - demand_at, 2) if first_gpu is not None else None,
        scale_down_s=scale_down_s,
        workers_left=workers_left,
        head_pid=cluster.head_pid,
        nodes=tracker.timeline(demand_at),
        startup_s=startup_s,
        stop_s=stop_s,
        total_s=round(time.monotonic() - started, 2),
        killed_at_stop=killed,
    )


# --------------------------------------------------------------------------------------------
# CLI: dgnode cluster check | rehearse
# --------------------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    cluster = subparsers.add_parser("cluster", help="check cluster.yaml; rehearse its autoscaling locally")
    commands = cluster.add_subparsers(dest="cluster_command", metavar="SUBCOMMAND", required=True)

    check = commands.add_parser(
        "check", help="validate a Ray cluster config (Ray's schema) and check it against dgnode's stages"
    )
    check.add_argument("config", nargs="?", default=DEFAULT_CLUSTER_YAML, help="cluster YAML (default: %(default)s)")
    check.add_argument("--json", dest="json_path", help="also write the findings and node types as JSON here")
    check.set_defaults(handler=_check_command)

    rehearse = commands.add_parser(
        "rehearse",
        help="run GPU work shaped like extraction and tuning on a local fake cluster typed like the config, "
        "and report scale-up and scale-down",
    )
    rehearse.add_argument("--config", default=DEFAULT_CLUSTER_YAML, help="cluster YAML (default: %(default)s)")
    rehearse.add_argument("--rows", type=int, default=32, help="rows through the GPU actor pool (default: %(default)s)")
    rehearse.add_argument("--max-actors", type=int, default=2, help="actor pool max_size (default: %(default)s)")
    rehearse.add_argument("--trials", type=int, default=2, help="concurrent trial workers (default: %(default)s)")
    rehearse.add_argument("--idle-timeout-minutes", type=float, default=0.1, help="default: %(default)s")
    rehearse.add_argument("--max-workers-per-type", type=int, default=2, help="cap per node type (default: %(default)s)")
    rehearse.add_argument("--scale-down-timeout", type=float, default=120.0, help="seconds (default: %(default)s)")
    rehearse.add_argument("--json", dest="json_path", help="write the report as JSON here")
    rehearse.add_argument("--pid-file", help="write the local head's PID here while it runs (for supervisors)")
    rehearse.add_argument("--log-dir", help="keep the head's and the autoscaler's logs here")
    rehearse.set_defaults(handler=_rehearse_command)


def _check_command(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    config = load_cluster_config(args.config)
    findings = check_cluster_config(config)
    resources = node_type_resources(config)
    table = Table(title=f"{args.config}: node types")
    for column in ("node type", "instance", "Ray resources", "GPU", "workers", "$/h each"):
        table.add_column(column)
    for name, node_type in config["available_node_types"].items():
        instance_name, instance = instance_type_of(node_type)
        gpu = f"{instance.gpus}x {instance.gpu_model} {instance.gpu_memory_gib:g} GB" if instance and instance.gpus else "-"
        count = "head" if name == config["head_node_type"] else f"{node_type.get('min_workers', 0)}..{node_type.get('max_workers', config.get('max_workers'))}"
        price = f"{instance.usd_per_hour:.3f}" if instance else "?"
        table.add_row(name, str(instance_name), _format_resources(resources[name]), gpu, count, price)
    console = Console()
    console.print(table)
    cost = max_hourly_cost(config)
    if cost is not None:
        console.print(f"at full scale (every type at max_workers): about ${cost:.2f}/h on demand")
    for finding in findings:
        style = "red" if finding.severity == "error" else "yellow"
        console.print(f"[{style}]{finding.severity}[/{style}] {finding.where}: {finding.message}", highlight=False)
    errors = sum(f.severity == "error" for f in findings)
    console.print(f"{errors} error(s), {len(findings) - errors} warning(s)")
    if args.json_path:
        Path(args.json_path).write_text(
            json.dumps(
                {
                    "config": str(args.config),
                    "node_types": resources,
                    "max_hourly_cost_usd": cost,
                    "findings": [dataclasses.asdict(f) for f in findings],
                },
                indent=2,
            )
        )
    return 1 if errors else 0


def _rehearse_command(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    report = rehearse_autoscaling(
        args.config,
        rows=args.rows,
        max_actors=args.max_actors,
        trials=args.trials,
        idle_timeout_minutes=args.idle_timeout_minutes,
        max_workers_per_type=args.max_workers_per_type,
        scale_down_timeout_s=args.scale_down_timeout,
        pid_file=args.pid_file,
        log_dir=args.log_dir,
        log=lambda message: console.print(f"[dim]{message}[/dim]", highlight=False),
    )
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report.to_dict(), indent=2))
    out = Console()
    stages = Table(title=f"autoscaling rehearsal of {report.cluster_yaml}: stages")
    for column in ("stage", "each unit", "done", "ran on (units)", "s"):
        stages.add_column(column)
    for stage in report.stages:
        used = "\n".join(f"{t} ({n})" for t, n in stage.node_types_used.items()) or "-"
        stages.add_row(stage.name, _format_resources(stage.resources), f"{stage.units_done}/{stage.units}", used, f"{stage.seconds:.1f}")
    out.print(stages)
    nodes = Table(title="worker nodes (seconds after the first GPU request)")
    for column in ("node type", "resources", "up", "removed"):
        nodes.add_column(column)
    for node in report.nodes:
        down = f"{node['down_s']:.1f}" if node["down_s"] is not None else "still up"
        nodes.add_row(node["node_type"], _format_resources(node["resources"]), f"{node['up_s']:.1f}", down)
    out.print(nodes)
    up = f"{report.scale_up_s:.1f} s" if report.scale_up_s is not None else "never"
    down = f"{report.scale_down_s:.1f} s" if report.scale_down_s is not None else f"not within the wait ({report.workers_left} left)"
    out.print(f"first GPU worker up after {up}; all workers removed {down} after the work ended; "
              f"head GPUs seen: {report.head_gpus_max:g}; head start {report.startup_s:.1f} s, stop {report.stop_s:.1f} s, "
              f"total {report.total_s:.1f} s", highlight=False)
    ok = (
        all(s.units_done == s.units for s in report.stages)
        and report.scale_up_s is not None
        and report.scale_down_s is not None
        and report.head_gpus_max == 0
    )
    return 0 if ok else 1
