"""Stage-shaped GPU work on a local cluster typed like cluster.yaml, and what the autoscaler did.

:func:`rehearse_autoscaling` starts a :class:`~dgnode.cluster.local.LocalAutoscalingCluster`,
pushes extraction-shaped work (a Ray Data actor pool, ``num_gpus=1``) and tuning-shaped work
(concurrent trial workers) through it, waits for the idle workers to be removed, and reports
when each node came and went (:class:`RehearsalReport`).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dgnode.cluster.config import (
    DEFAULT_CLUSTER_YAML,
    DEFAULT_STAGE_DEMANDS,
    StageDemand,
    _as_config,
    _format_resources,
    node_type_resources,
    worker_node_types,
)
from dgnode.cluster.local import NODE_TYPE_LABEL, LocalAutoscalingCluster
from dgnode.errors import DgnodeError
from dgnode.ray_session import ray_session

__all__ = ["RehearsalReport", "StageRun", "rehearse_autoscaling"]


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

    @property
    def succeeded(self) -> bool:
        """All work ran, GPU workers came up and went again, and the head offered no GPU."""
        return (all(s.units_done == s.units for s in self.stages) and self.scale_up_s is not None
                and self.scale_down_s is not None and self.head_gpus_max == 0)


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
    cluster_yaml: str | Path | Mapping[str, Any] = DEFAULT_CLUSTER_YAML,
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

    # ray_session() would quietly join a session already open here instead of the rehearsal's.
    if ray.is_initialized():
        raise DgnodeError("Ray is already initialised in this process; run the rehearsal in a fresh one (`dgnode cluster rehearse`)")
    say = log or (lambda message: None)
    config = _as_config(cluster_yaml)
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
    try:
        say("starting the local head (fake multi-node provider)")
        address = cluster.start()
        _use_token_auth(cluster.driver_env())
        with ray_session(address=address):
            tracker = _NodeTracker(head_type, resources)
            tracker.start()
            try:
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
            finally:
                tracker.stop()  # before the session ends: the tracker polls ray.nodes()
            workers_left = len(tracker.workers_alive())
    finally:
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
        cluster_yaml="(mapping)" if isinstance(cluster_yaml, Mapping) else str(cluster_yaml),
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
