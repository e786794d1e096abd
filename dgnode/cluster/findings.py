"""What the cluster-config checks report, and the shell commands of a config they read.

A :class:`Finding` is one problem (``error``: do not launch) or reminder (``warning``) at one
dotted key of the config; :func:`iter_commands` yields every shell command with that key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from dgnode.cluster.config import _COMMAND_LISTS

__all__ = ["Finding", "head_commands", "iter_commands"]


@dataclasses.dataclass(frozen=True)
class Finding:
    """A problem (``error``: do not launch) or a reminder (``warning``) about a cluster config."""

    severity: Literal["error", "warning"]
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


def iter_commands(config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Every shell command in the config with where it is, e.g. ``("setup_commands[1]", "pip ...")``."""
    for key in _COMMAND_LISTS:
        for index, command in enumerate(config.get(key) or []):
            yield f"{key}[{index}]", str(command)
    for name, node_type in config.get("available_node_types", {}).items():
        for key in ("initialization_commands", "worker_setup_commands"):
            for index, command in enumerate(node_type.get(key) or []):
                yield f"available_node_types.{name}.{key}[{index}]", str(command)


def head_commands(config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """The commands that run on the head (setup and start)."""
    for where, command in iter_commands(config):
        if where.split("[")[0] in ("setup_commands", "head_setup_commands", "head_start_ray_commands"):
            yield where, command
