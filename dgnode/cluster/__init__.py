"""The Ray cluster behind dgnode: check ``cluster.yaml``, and rehearse its autoscaling locally.

``cluster.yaml`` (repository root) describes the AWS cluster for Ray's cluster launcher. This
package reads it the way ``ray up`` does (:mod:`~dgnode.cluster.config`: Ray's own defaults and
JSON schema, the resources each node type offers), checks it against what dgnode's stages ask Ray
for (:mod:`~dgnode.cluster.checks`; shared state only in S3: :mod:`~dgnode.cluster.locations`), turns its node types into a local fake cluster on which the
autoscaler really launches and removes (simulated) nodes (:mod:`~dgnode.cluster.local`), and runs
stage-shaped work on that cluster (:mod:`~dgnode.cluster.rehearsal`)::

    config = load_cluster_config("cluster.yaml")
    for finding in check_cluster_config(config):
        print(finding)                      # "error: head_start_ray_commands[2]: ..."
    fake_node_types("cluster.yaml")         # {"worker.gpu.a10g.4cpu": {"resources": {...}, ...}}
    report = rehearse_autoscaling("cluster.yaml")   # GPU nodes come up, work runs, nodes go

The command line (``dgnode cluster check | rehearse``) is :mod:`~dgnode.cluster.cli`.
"""

from dgnode.cluster.checks import (
    LOCAL_HOSTS,
    PLACEHOLDER,
    check_cluster_config,
    placeholders,
    launcher_made_groups,
    world_open_ingress,
)
from dgnode.cluster.config import (
    DEFAULT_CLUSTER_YAML,
    DEFAULT_STAGE_DEMANDS,
    HEAD_AUTOSCALING_CONFIG,
    INSTANCE_TYPES,
    InstanceType,
    StageDemand,
    fits,
    instance_type_of,
    launchable_workers,
    load_cluster_config,
    max_hourly_cost,
    node_type_resources,
    worker_node_types,
)
from dgnode.cluster.findings import Finding, head_commands, iter_commands
from dgnode.cluster.locations import DATA_PREFIX, SHARED_LOCATIONS, docker_env, shared_location_findings
from dgnode.cluster.local import (
    FAKE_HEAD_NODE_TYPE,
    FAKE_OBJECT_STORE_BYTES,
    NODE_TYPE_LABEL,
    TEMP_PREFIX,
    LocalAutoscalingCluster,
    fake_autoscaling_config,
    fake_node_types,
    session_processes,
    stop_recorded_cluster,
    stop_session,
)
from dgnode.cluster.rehearsal import RehearsalReport, StageRun, rehearse_autoscaling

__all__ = [
    "DATA_PREFIX",
    "DEFAULT_CLUSTER_YAML",
    "DEFAULT_STAGE_DEMANDS",
    "HEAD_AUTOSCALING_CONFIG",
    "FAKE_HEAD_NODE_TYPE",
    "FAKE_OBJECT_STORE_BYTES",
    "INSTANCE_TYPES",
    "LOCAL_HOSTS",
    "NODE_TYPE_LABEL",
    "PLACEHOLDER",
    "SHARED_LOCATIONS",
    "TEMP_PREFIX",
    "Finding",
    "InstanceType",
    "LocalAutoscalingCluster",
    "RehearsalReport",
    "StageDemand",
    "StageRun",
    "check_cluster_config",
    "docker_env",
    "fake_autoscaling_config",
    "fake_node_types",
    "fits",
    "head_commands",
    "instance_type_of",
    "launchable_workers",
    "iter_commands",
    "load_cluster_config",
    "max_hourly_cost",
    "node_type_resources",
    "placeholders",
    "rehearse_autoscaling",
    "session_processes",
    "shared_location_findings",
    "stop_recorded_cluster",
    "stop_session",
    "worker_node_types",
    "launcher_made_groups",
    "world_open_ingress",
]
