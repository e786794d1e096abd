"""What ``dgnode cluster check`` and ``dgnode cluster rehearse`` show: rich renderables of the
library's results (the commands only print them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from dgnode.cluster.findings import Finding
from dgnode.cluster.config import _format_resources, instance_type_of, max_hourly_cost, node_type_resources
from dgnode.cluster.rehearsal import RehearsalReport

__all__ = ["check_report", "rehearsal_report"]


def check_report(path: str | Path, config: Mapping[str, Any], findings: Sequence[Finding]) -> list[Any]:
    """The node types with their resources and prices, the full-scale cost, every finding and a count."""
    from rich.table import Table

    resources = node_type_resources(config)
    table = Table(title=f"{path}: node types")
    for column in ("node type", "instance", "Ray resources", "GPU", "workers", "$/h each"):
        table.add_column(column)
    for name, node_type in config["available_node_types"].items():
        instance_name, instance = instance_type_of(node_type)
        gpu = f"{instance.gpus}x {instance.gpu_model} {instance.gpu_memory_gib:g} GB" if instance and instance.gpus else "-"
        count = "head" if name == config["head_node_type"] else f"{node_type.get('min_workers', 0)}..{node_type.get('max_workers', config.get('max_workers'))}"
        price = f"{instance.usd_per_hour:.3f}" if instance else "?"
        table.add_row(name, str(instance_name), _format_resources(resources[name]), gpu, count, price)
    lines: list[Any] = [table]
    cost = max_hourly_cost(config)
    if cost is not None:
        lines.append(f"at full scale (every type at max_workers): about ${cost:.2f}/h on demand")
    for finding in findings:
        style = "red" if finding.severity == "error" else "yellow"
        lines.append(f"[{style}]{finding.severity}[/{style}] {finding.where}: {finding.message}")
    errors = sum(f.severity == "error" for f in findings)
    lines.append(f"{errors} error(s), {len(findings) - errors} warning(s)")
    return lines


def rehearsal_report(report: RehearsalReport) -> list[Any]:
    """The stages (where their units ran), the worker nodes (up / removed) and the timings."""
    from rich.table import Table

    stages = Table(title=f"autoscaling rehearsal of {report.cluster_yaml}: stages")
    for column in ("stage", "each unit", "done", "ran on (units)", "s"):
        stages.add_column(column)
    for stage in report.stages:
        used = "\n".join(f"{t} ({n})" for t, n in stage.node_types_used.items()) or "-"
        stages.add_row(stage.name, _format_resources(stage.resources), f"{stage.units_done}/{stage.units}", used, f"{stage.seconds:.1f}")
    nodes = Table(title="worker nodes (seconds after the first GPU request)")
    for column in ("node type", "resources", "up", "removed"):
        nodes.add_column(column)
    for node in report.nodes:
        down = f"{node['down_s']:.1f}" if node["down_s"] is not None else "still up"
        nodes.add_row(node["node_type"], _format_resources(node["resources"]), f"{node['up_s']:.1f}", down)
    up = f"{report.scale_up_s:.1f} s" if report.scale_up_s is not None else "never"
    down = f"{report.scale_down_s:.1f} s" if report.scale_down_s is not None else f"not within the wait ({report.workers_left} left)"
    summary = (f"first GPU worker up after {up}; all workers removed {down} after the work ended; "
               f"head GPUs seen: {report.head_gpus_max:g}; head start {report.startup_s:.1f} s, stop {report.stop_s:.1f} s, "
               f"total {report.total_s:.1f} s")
    return [stages, nodes, summary]
