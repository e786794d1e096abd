"""cluster.yaml's node types as a local autoscaling cluster, and stopping exactly its processes.

The local cluster uses Ray's fake multi-node provider (``ray.autoscaler._private.fake_multi_node``):
every "node" is a real raylet on this machine with the logical resources of a cluster.yaml node
type, GPUs included. ``ray.cluster_utils.AutoscalingCluster`` wraps the same provider but cannot
be used here: its ``start``/``shutdown`` run ``ray stop --force``, which kills every Ray process of
the user on the machine, and the Ray 2.60 wheel lacks the ``example.yaml`` it builds its config
from. :class:`LocalAutoscalingCluster` starts the head in its own session on free ports and stops
exactly that session's processes (:func:`stop_session`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dgnode.atomic import write_json, write_text
from dgnode.cluster.config import _COMMAND_LISTS, _as_config, node_type_resources, worker_node_types
from dgnode.errors import DgnodeError, InputError

__all__ = [
    "FAKE_HEAD_NODE_TYPE",
    "FAKE_OBJECT_STORE_BYTES",
    "NODE_TYPE_LABEL",
    "TEMP_PREFIX",
    "LocalAutoscalingCluster",
    "fake_autoscaling_config",
    "fake_node_types",
    "session_processes",
    "stop_recorded_cluster",
    "stop_session",
]

# Label put on each fake node so work can be traced back to its cluster.yaml type.
NODE_TYPE_LABEL = "dgnode.io/node-type"
# The fake provider names the head's node type itself; the local config must use this name.
FAKE_HEAD_NODE_TYPE = "ray.head.default"
# Each local cluster's temp dir is /tmp/dgray-*: kept short (Ray's Unix sockets live there) and
# recognisable, so stop_recorded_cluster() deletes only directories made here.
TEMP_PREFIX = "dgray-"
FAKE_OBJECT_STORE_BYTES = 100 * 1024**2  # Ray's minimum is 75 MiB; fake nodes share this machine's RAM


# -- the fake provider's config, shaped like cluster.yaml ----------------------------------------


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


# -- the processes of one session ---------------------------------------------------------------


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


# -- the cluster ----------------------------------------------------------------------------------


class LocalAutoscalingCluster:
    """cluster.yaml's node types on this machine: a Ray head whose autoscaler launches fake nodes.

    The head runs ``ray start --head --block`` in a new session, on free ports, with a private
    temp dir (kept short: Ray's Unix sockets live there) and token authentication with a fresh
    token of its own (``~/.ray`` is not touched). :meth:`stop` ends that session's processes and
    nothing else. Connect a driver with ``ray_session(cluster.address)`` in a process whose
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
        autoscaling = fake_autoscaling_config(
            self.cluster_config,
            gcs_address=f"{node_ip}:{port}",
            idle_timeout_minutes=self.idle_timeout_minutes,
            max_workers_per_type=self.max_workers_per_type,
            object_store_memory=self.object_store_memory,
        )
        config_path = self.temp_dir / "autoscaling.json"
        write_json(config_path, autoscaling, indent=1)
        head = dict(autoscaling["available_node_types"][FAKE_HEAD_NODE_TYPE]["resources"])
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
            write_text(self.pid_file, f"{self._process.pid}\n{self.temp_dir}\n")
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
