"""``cluster.yaml`` read the way ``ray up`` reads it, and the resources its node types offer.

Resource arithmetic. A node type offers the resources ``R_t = detect(instance) | declared``
(explicit ``resources`` override what the instance type implies, as in Ray's AWS provider). A
stage's unit of work (an actor or task) requests ``d``; it fits type ``t`` iff ``d[r] <= R_t[r]``
for every resource ``r``. Ray schedules by these counts only, so GPU *memory* is checked
separately, from :data:`INSTANCE_TYPES`.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from dgnode.errors import InputError

__all__ = [
    "DEFAULT_CLUSTER_YAML",
    "DEFAULT_STAGE_DEMANDS",
    "HEAD_AUTOSCALING_CONFIG",
    "INSTANCE_TYPES",
    "InstanceType",
    "StageDemand",
    "fits",
    "instance_type_of",
    "launchable_workers",
    "load_cluster_config",
    "max_hourly_cost",
    "node_type_resources",
    "worker_node_types",
]

DEFAULT_CLUSTER_YAML = "cluster.yaml"
# Where `ray up` leaves the cluster config on the head node, for the autoscaler it starts there (a
# job's driver runs on the head, so it can read what the autoscaler may still launch).
HEAD_AUTOSCALING_CONFIG = Path("~/ray_bootstrap_config.yaml")
# The top-level keys of a cluster config that hold shell commands.
_COMMAND_LISTS = (
    "initialization_commands",
    "setup_commands",
    "head_setup_commands",
    "worker_setup_commands",
    "head_start_ray_commands",
    "worker_start_ray_commands",
)


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


# -- loading -----------------------------------------------------------------------------------


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
    """A config given as a file (loaded and validated) or as an already loaded mapping."""
    if isinstance(cluster_yaml, Mapping):
        return dict(cluster_yaml)
    return load_cluster_config(cluster_yaml)


# -- node types and their resources --------------------------------------------------------------


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


def launchable_workers(path: str | Path = HEAD_AUTOSCALING_CONFIG) -> dict[str, tuple[dict[str, float], int]] | None:
    """The worker node types an autoscaler may launch: ``{type: (resources, max_workers)}``, read
    from the autoscaling config at ``path`` (default: the one ``ray up`` leaves on the head); None
    when there is none (a fixed cluster: ``ray start`` by hand, or a local Ray)."""
    path = Path(path).expanduser()
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, yaml.YAMLError) as error:
        raise InputError(f"cannot read the autoscaling config: {error}", path=str(path)) from None
    if not isinstance(config, Mapping) or not isinstance(config.get("available_node_types"), Mapping) or \
            "head_node_type" not in config:
        raise InputError("not an autoscaling config (expected available_node_types and head_node_type)", path=str(path))
    resources = node_type_resources(config)
    default_max = int(config.get("max_workers", 0))
    return {name: (resources[name], int(node_type.get("max_workers", default_max)))
            for name, node_type in worker_node_types(config).items()}


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


def _format_resources(resources: Mapping[str, float]) -> str:
    """``CPU=4, GPU=1, acc:A10G=1`` (zero amounts left out) for messages and tables."""
    return ", ".join(f"{k.replace('accelerator_type:', 'acc:')}={v:g}" for k, v in resources.items() if v) or "nothing"
