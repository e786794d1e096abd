"""Is a cluster config fit to launch? :func:`check_cluster_config` checks it against what
dgnode's stages ask Ray for, keeps the head GPU-free and looks for anything exposed to the
internet; each problem is a :class:`Finding`."""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from dgnode.cluster.config import (
    DEFAULT_STAGE_DEMANDS,
    StageDemand,
    _format_resources,
    fits,
    instance_type_of,
    node_type_resources,
    worker_node_types,
)
from dgnode.cluster.findings import Finding, head_commands, iter_commands
from dgnode.cluster.locations import shared_location_findings

__all__ = [
    "LOCAL_HOSTS",
    "PLACEHOLDER",
    "check_cluster_config",
    "placeholders",
    "launcher_made_groups", "world_open_ingress",
]

PLACEHOLDER = "CHANGE-ME"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


_FLAG_VALUE = r"(?:=|\s+)['\"]?([^\s'\";]+)"
_DASHBOARD_HOST = re.compile(r"--dashboard-host" + _FLAG_VALUE)
_NUM_GPUS = re.compile(r"--num-gpus" + _FLAG_VALUE)
_MLFLOW_HOST_ENV = re.compile(r"\bMLFLOW_HOST=['\"]?([^\s'\";]*)")
_MLFLOW_SERVER_HOST = re.compile(r"\bmlflow\s+server\b.*?\s(?:--host|-h)" + _FLAG_VALUE)
_DOCKER_PUBLISH = re.compile(r"(?:^|\s)(?:-p|--publish|--publish-all|-P)(?:[=\s]|$)")
_RAY_IMAGE = re.compile(r"^rayproject/ray(?:-ml)?:(?P<version>\d+\.\d+\.\d+)(?P<suffix>[-\w.]*)$")
_WORLD = frozenset({"0.0.0.0/0", "::/0"})
_PRIVATE_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")  # RFC 1918, RFC 4193


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


def launcher_made_groups(config: Mapping[str, Any]) -> list[Finding]:
    """Node types without ``SecurityGroupIds``: for them the launcher creates a group, and Ray
    opens SSH (22) to 0.0.0.0/0 on every group it creates."""
    findings = []
    for name, node_type in sorted((config.get("available_node_types") or {}).items()):
        if not (node_type.get("node_config") or {}).get("SecurityGroupIds"):
            findings.append(Finding(
                "error", f"available_node_types.{name}.node_config",
                "no SecurityGroupIds: the launcher would create a security group with SSH open to 0.0.0.0/0; "
                "create one with SSH from your network only (docs/cluster.md, Security) and name it here"))
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
    port other than SSH open to 0.0.0.0/0 or ::/0; the dashboard or Docker ports bound beyond
    localhost, MLflow beyond localhost or a private address; a Ray image whose version differs
    from the installed Ray (``ray_version``, default: the installed one); a shared location
    (store, corpus, runs, searches, MLflow artifacts) that is a node-local path, a whole-prefix
    copy onto nodes, AWS keys in the file (:mod:`dgnode.cluster.locations`). Warnings: unknown
    instance types, an unreachable global max_workers, a missing MLflow server or idle timeout, a
    shared location outside the one data prefix, and values still marked CHANGE-ME.
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
    findings += launcher_made_groups(config)
    for where, command in iter_commands(config):
        for host in _DASHBOARD_HOST.findall(command):
            if host not in LOCAL_HOSTS:
                add("error", where, f"--dashboard-host={host} exposes the dashboard and job server; keep 127.0.0.1 and use `ray dashboard`")
        for host in _MLFLOW_HOST_ENV.findall(command) + _MLFLOW_SERVER_HOST.findall(command):
            if host not in LOCAL_HOSTS and not _private_address(host):
                add("error", where, f"MLflow bound to {host or '(empty)'}; bind it to 127.0.0.1 (or the head's private "
                                    "address) and use SSH port forwarding")
    docker = config.get("docker") or {}
    for key in ("run_options", "head_run_options", "worker_run_options"):
        for index, option in enumerate(docker.get(key) or []):
            if _DOCKER_PUBLISH.search(str(option)):
                add("error", f"docker.{key}[{index}]", f"{option!r} publishes container ports on the host's interfaces")
    if not any("mlflow/server.sh" in c or re.search(r"\bmlflow\s+server\b", c) for _, c in head_commands(config)):
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

    # Shared state only in S3: store, corpus, runs, searches, MLflow artifacts; no keys in the file.
    findings += shared_location_findings(config)

    for key in placeholders(config):
        add("warning", key, f"still contains {PLACEHOLDER}: fill it in before `ray up` (docs/cluster.md)")
    return findings


def _private_address(host: str) -> bool:
    """A literal address of a private network (10/8, 172.16/12, 192.168/16, fc00::/7): reachable
    inside the cluster's VPC, never from the internet. Every-interface and link-local addresses
    are not."""
    import ipaddress

    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network) for network in _PRIVATE_NETWORKS
               if ipaddress.ip_network(network).version == address.version)
