"""Where a cluster keeps what its nodes share: S3, and nothing else.

Ray's nodes share no disk. Whatever one node writes and another reads (the feature store, the
raw corpus, run and search directories with their checkpoints, MLflow's artifacts) must be an
``s3://`` URI every node reaches with its own credentials, all under one prefix; only caches and
the MLflow server's metadata (on the head) stay on a node's disk. ``cluster.yaml`` names the
shared locations as environment variables of every node (``docker.run_options``:
``--env NAME=s3://...``, :data:`SHARED_LOCATIONS`), which jobs read
(``--data.store "$DGNODE_STORE"``, docs/cluster.md).

:func:`shared_location_findings` reports, one line each, naming the key:

* errors: a shared location that is missing or a node-local path; MLflow artifacts kept on the
  head's disk; a setup command that copies a whole S3 prefix onto every node (nodes fetch what
  they need); AWS keys anywhere in the file; an AWS worker type without an instance profile
  (keys are the only other way its nodes could reach S3);
* warnings: a shared location outside ``DGNODE_DATA_URI``, the one prefix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dgnode.cluster.findings import Finding, head_commands, iter_commands

__all__ = ["DATA_PREFIX", "SHARED_LOCATIONS", "docker_env", "shared_location_findings"]

DATA_PREFIX = "DGNODE_DATA_URI"
# Variable -> what lives there (every node reads or writes it).
SHARED_LOCATIONS: Mapping[str, str] = {
    DATA_PREFIX: "the one S3 prefix everything shared lives under",
    "DGNODE_STORE": "the feature store (written by extraction actors, read by every trial and worker)",
    "DGNODE_RUNS": "run directories and Ray Train storage (checkpoints)",
    "DGNODE_SEARCHES": "search directories (Tune's experiment and every trial's checkpoints)",
    "IEMOCAP_ROOT": "the raw corpus (each node fetches the dialogues it decodes)",
}
_ENV_OPTION = re.compile(r"^(?:--env|-e)(?:=|\s+)(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")
_ARTIFACTS = re.compile(r"(?:\bMLFLOW_ARTIFACTS_DESTINATION=|--artifacts-destination[=\s]+)(\"[^\"]*\"|'[^']*'|\S+)")
_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
_BULK_COPY = re.compile(r"\baws\s+s3\s+sync\b|\baws\s+s3\s+cp\b[^;&|]*--recursive|\b(?:s5cmd|rclone)\s+(?:sync|copy)\b")
_AWS_KEYS = re.compile(r"\b(AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN)\b|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")


def docker_env(config: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """``{NAME: (value, where)}`` of the ``--env NAME=value`` options every node's container gets."""
    found: dict[str, tuple[str, str]] = {}
    docker = config.get("docker") or {}
    for key in ("run_options", "head_run_options", "worker_run_options"):
        for index, option in enumerate(docker.get(key) or []):
            match = _ENV_OPTION.match(str(option).strip())
            if match:
                found.setdefault(match["name"], (match["value"].strip().strip("'\""), f"docker.{key}[{index}]"))
    return found


def shared_location_findings(config: Mapping[str, Any]) -> list[Finding]:
    """See the module docstring."""
    findings: list[Finding] = []
    env = docker_env(config)
    prefix = env.get(DATA_PREFIX, ("", ""))[0].rstrip("/")
    for name, what in SHARED_LOCATIONS.items():
        if name not in env:
            findings.append(Finding("error", "docker.run_options",
                                    f"{name} is not set: {what} must be an s3:// URI every node reaches "
                                    f"(--env {name}=s3://BUCKET/PREFIX...; docs/cluster.md, Layout)"))
            continue
        value, where = env[name]
        problem = _not_shared(value)
        if problem:
            findings.append(Finding("error", where, f"{name}={value} {problem}; {what} must be an s3:// URI every "
                                                    "node reaches (docs/cluster.md, Layout)"))
        elif name != DATA_PREFIX and prefix.startswith("s3://") and not (value + "/").startswith(prefix + "/"):
            findings.append(Finding("warning", where, f"{name}={value} is outside {DATA_PREFIX}={prefix}: the layout "
                                                      "keeps everything shared under one prefix"))
    findings += _mlflow_artifacts(config, {name: value for name, (value, _) in env.items()})
    for where, command in iter_commands(config):
        if _BULK_COPY.search(command):
            findings.append(Finding("error", where, "copies a whole S3 prefix onto the node that runs it; nodes read "
                                                    "the shared locations in S3 and fetch only what they need"))
    findings += _keys_in_file(config)
    findings += _missing_instance_profiles(config)
    return findings


def _not_shared(value: str) -> str | None:
    """Why ``value`` is no shared location (None when it is one)."""
    if not value.startswith("s3://"):
        return "is a node-local path: every node would see its own copy (or none)"
    bucket = value[len("s3://"):].split("/", 1)[0]
    if not bucket or "@" in bucket or ":" in bucket:
        return "is no s3://BUCKET/PREFIX URI (credentials never go into a URI)"
    return None


def _mlflow_artifacts(config: Mapping[str, Any], env: Mapping[str, str]) -> list[Finding]:
    findings = []
    for where, command in head_commands(config):
        if "mlflow/server.sh" not in command and not re.search(r"\bmlflow\s+server\b", command):
            continue
        match = _ARTIFACTS.search(command)
        if match is None:
            findings.append(Finding("error", where, "the MLflow server keeps its artifacts on the head's disk by default; "
                                                    "set MLFLOW_ARTIFACTS_DESTINATION=\"$DGNODE_DATA_URI/mlflow-artifacts\""))
            continue
        value = _VARIABLE.sub(lambda m: env.get(m[1], m[0]), match[1].strip("'\""))
        if not value.startswith("s3://"):
            findings.append(Finding("error", where, f"MLflow artifacts go to {value}, the head's disk; use an s3:// URI "
                                                    "under DGNODE_DATA_URI (they outlive the head, and no node needs "
                                                    "its disk)"))
    return findings


def _keys_in_file(config: Any, where: str = "") -> list[Finding]:
    """AWS keys (or their variable names) anywhere in the config's values."""
    if isinstance(config, Mapping):
        return [f for key, value in config.items() for f in _keys_in_file(value, f"{where}.{key}" if where else str(key))]
    if isinstance(config, list):
        return [f for index, value in enumerate(config) for f in _keys_in_file(value, f"{where}[{index}]")]
    if isinstance(config, str) and _AWS_KEYS.search(config):
        return [Finding("error", where, "AWS credentials do not go into the cluster config (it is uploaded, shared and "
                                        "versioned); give the nodes an IAM instance profile (docs/cluster.md, IAM)")]
    return []


def _missing_instance_profiles(config: Mapping[str, Any]) -> list[Finding]:
    if (config.get("provider") or {}).get("type") != "aws":
        return []
    head = config.get("head_node_type")
    return [Finding("error", f"available_node_types.{name}.node_config",
                    "no IamInstanceProfile: its nodes could reach the S3 locations only with keys in the file; name "
                    "the dgnode-worker profile (docs/cluster.md, IAM)")
            for name, node_type in sorted((config.get("available_node_types") or {}).items())
            if name != head and not (node_type.get("node_config") or {}).get("IamInstanceProfile")]
