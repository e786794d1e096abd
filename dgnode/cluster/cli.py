"""``dgnode cluster check [CLUSTER_YAML]`` and ``dgnode cluster rehearse``: print what the library finds.

``check`` prints the node types, the full-scale cost and every finding, and exits 1 on an error;
``rehearse`` prints the stages and the worker nodes of a local autoscaling rehearsal, and exits 1
unless all work ran, GPU workers came up and went again, and the head offered no GPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dgnode.cluster.checks import check_cluster_config
from dgnode.cluster.config import (
    DEFAULT_CLUSTER_YAML,
    _format_resources,
    instance_type_of,
    load_cluster_config,
    max_hourly_cost,
    node_type_resources,
)
from dgnode.cluster.rehearsal import rehearse_autoscaling
from dgnode.command import Command

__all__ = ["COMMANDS", "CheckOptions", "RehearseOptions", "run_check", "run_rehearse"]


@dataclass
class CheckOptions:
    """Validate a Ray cluster config (Ray's schema) and check it against dgnode's stages.

    Attributes:
        cluster_yaml: the Ray cluster launcher YAML
        json: also write the findings and node types as JSON here
    """

    cluster_yaml: str = DEFAULT_CLUSTER_YAML
    json: str | None = None


@dataclass
class RehearseOptions:
    """Rehearse autoscaling: extraction- and tuning-shaped GPU work on a local cluster typed like the config.

    Attributes:
        cluster_yaml: the Ray cluster launcher YAML whose node types the local cluster gets
        rows: rows through the GPU actor pool
        max_actors: the actor pool's max_size
        trials: concurrent trial workers
        idle_timeout_minutes: the autoscaler's idle timeout
        max_workers_per_type: cap on the workers of each node type
        scale_down_timeout: seconds to wait for the idle workers to be removed
        json: write the report as JSON here
        pid_file: write the local head's PID here while it runs (for supervisors)
        log_dir: keep the head's and the autoscaler's logs here
    """

    cluster_yaml: str = DEFAULT_CLUSTER_YAML
    rows: int = 32
    max_actors: int = 2
    trials: int = 2
    idle_timeout_minutes: float = 0.1
    max_workers_per_type: int = 2
    scale_down_timeout: float = 120.0
    json: str | None = None
    pid_file: str | None = None
    log_dir: str | None = None


def run_check(options: CheckOptions) -> int:
    from rich.console import Console
    from rich.table import Table

    from dgnode.atomic import write_json

    config = load_cluster_config(options.cluster_yaml)
    findings = check_cluster_config(config)
    resources = node_type_resources(config)
    table = Table(title=f"{options.cluster_yaml}: node types")
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
    if options.json:
        write_json(options.json, {
            "config": str(options.cluster_yaml),
            "node_types": resources,
            "max_hourly_cost_usd": cost,
            "findings": [dataclasses.asdict(f) for f in findings],
        })
    return 1 if errors else 0


def run_rehearse(options: RehearseOptions) -> int:
    from rich.console import Console
    from rich.table import Table

    from dgnode.atomic import write_json

    console = Console(stderr=True)
    report = rehearse_autoscaling(
        options.cluster_yaml,
        rows=options.rows,
        max_actors=options.max_actors,
        trials=options.trials,
        idle_timeout_minutes=options.idle_timeout_minutes,
        max_workers_per_type=options.max_workers_per_type,
        scale_down_timeout_s=options.scale_down_timeout,
        pid_file=options.pid_file,
        log_dir=options.log_dir,
        log=lambda message: console.print(f"[dim]{message}[/dim]", highlight=False),
    )
    if options.json:
        write_json(options.json, report.to_dict())
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


COMMANDS = (
    Command("cluster check", CheckOptions, run_check, positional=("cluster_yaml",),
            help="validate a Ray cluster config (Ray's schema) and check it against dgnode's stages"),
    Command("cluster rehearse", RehearseOptions, run_rehearse,
            help="run GPU work shaped like extraction and tuning on a local fake cluster typed like the config, "
                 "and report scale-up and scale-down"),
)
