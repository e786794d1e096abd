"""``dgnode cluster check [CLUSTER_YAML]`` and ``dgnode cluster rehearse``: print what the library finds.

``check`` prints the node types, the full-scale cost and every finding, and exits 1 on an error;
``rehearse`` prints the stages and the worker nodes of a local autoscaling rehearsal, and exits 1
unless all work ran, GPU workers came up and went again, and the head offered no GPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dgnode.cluster.checks import check_cluster_config
from dgnode.cluster.config import DEFAULT_CLUSTER_YAML, load_cluster_config, max_hourly_cost, node_type_resources
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

    from dgnode.atomic import write_json
    from dgnode.cluster.report import check_report

    config = load_cluster_config(options.cluster_yaml)
    findings = check_cluster_config(config)
    Console().print(*check_report(options.cluster_yaml, config, findings), sep="\n", highlight=False)
    if options.json:
        write_json(options.json, {"config": str(options.cluster_yaml), "node_types": node_type_resources(config),
                                  "max_hourly_cost_usd": max_hourly_cost(config),
                                  "findings": [dataclasses.asdict(f) for f in findings]})
    return 1 if any(f.severity == "error" for f in findings) else 0


def run_rehearse(options: RehearseOptions) -> int:
    from rich.console import Console

    from dgnode.atomic import write_json
    from dgnode.cluster.report import rehearsal_report

    console = Console(stderr=True)
    settings = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)
                if f.name not in ("cluster_yaml", "json", "scale_down_timeout")}
    report = rehearse_autoscaling(options.cluster_yaml, scale_down_timeout_s=options.scale_down_timeout,
                                  log=lambda message: console.print(f"[dim]{message}[/dim]", highlight=False), **settings)
    if options.json:
        write_json(options.json, report.to_dict())
    Console().print(*rehearsal_report(report), sep="\n", highlight=False)
    return 0 if report.succeeded else 1


COMMANDS = (
    Command("cluster check", CheckOptions, run_check, positional=("cluster_yaml",),
            help="validate a Ray cluster config (Ray's schema) and check it against dgnode's stages"),
    Command("cluster rehearse", RehearseOptions, run_rehearse,
            help="run GPU work shaped like extraction and tuning on a local fake cluster typed like the config, "
                 "and report scale-up and scale-down"),
)
