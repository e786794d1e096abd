"""A multi-node Ray cluster on this machine whose worker nodes share nothing but the network.

Every node is its own ``ray start --block`` in its own process session: a head (GCS, dashboard and
job API on 127.0.0.1) and worker nodes typed like ``cluster.yaml``'s node types (their custom
resources and the ``dgnode.io/node-type`` label; CPU and fake GPU counts kept small, the machine
has two cores). Token authentication is on, with a fresh token of this cluster's own.

Isolation. Each worker node starts under ``unshare -m --propagation private`` and mounts an empty
tmpfs over every directory of :attr:`MultiNodeCluster.private_dirs` (by default the machine's temp
dir, which holds pytest's ``tmp_path`` and Ray's own session dirs, and the repository checkout)
before ``ray start`` runs. Its raylet, its Ray workers and everything they start see only their own
copy of those directories: a file a stage writes to a node-local path on one node does not exist
on another node, nor on the head where the driver and the test run. Code reaches the worker nodes
the way it does on a real cluster: the job's ``--working-dir`` (or a driver's ``runtime_env``),
with the interpreter and its site-packages as the "image" every node shares. The AWS variables
reach every node through the ``ray start`` environment, so tasks find the S3 endpoint and
credentials as an instance profile would provide them.

Ray 2.60 turns ``--node-ip-address 127.0.0.1`` into the machine's interface address
(``ray._private.services.resolve_ip_for_localhost``), as for every local Ray; its dashboard and job
API listen on 127.0.0.1 only (see :mod:`dgnode.ray_session` on the core servers' binding).

Stopping. :meth:`MultiNodeCluster.stop` ends each node's session by PID
(:func:`dgnode.cluster.local.stop_session`, never ``ray stop``), workers first, also after a failed
start; a worker's tmpfs goes with the last process of its mount namespace.
:meth:`MultiNodeCluster.kill_node` SIGKILLs every process of one worker node at once, as a lost
machine would vanish (the fault tests).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from dgnode.cluster.local import NODE_TYPE_LABEL, session_processes, stop_session
from tests.processes import descendants, kill_recorded, session_of, start_time

REPO_ROOT = Path(__file__).resolve().parents[1]
RAY_BIN = str(Path(sys.executable).with_name("ray"))
NODE_NAME_LABEL = "dgnode.io/node-name"
# Bounded (the nodes share this machine's RAM) but not at Ray's 75 MiB minimum: at 100 MiB Ray Data
# held extraction's decoded batches back, a few blocks of video each.
OBJECT_STORE_BYTES = 300 * 1024**2
# Reached by the job's `ray job submit --working-dir`: what a cluster node never needs.
WORKING_DIR_EXCLUDES = [".venv", ".git", "demo_output", "mlruns", "mlflow.db", "**/__pycache__", ".pytest_cache",
                        "*.egg-info"]
# A SIGKILLed raylet is declared dead after period x threshold (Ray's defaults: 3 s x 5 after 5 s).
_HEALTH_CHECK = {"RAY_health_check_initial_delay_ms": "1000", "RAY_health_check_period_ms": "1000",
                 "RAY_health_check_failure_threshold": "3"}


@dataclass(frozen=True)
class NodeSpec:
    """One node: a name, the cluster.yaml node type it stands for, and what it offers Ray.

    ``resources`` are custom resources beside CPU and GPU (``accelerator_type:A10G``, ...); GPUs
    are fake (Ray counts them, there is no device), so stages that would run CUDA on them need
    ``device=cpu`` or CPU-only node types.
    """

    name: str
    node_type: str
    cpus: int
    gpus: int = 0
    resources: Mapping[str, float] = field(default_factory=dict)


def typed_like(config: Mapping, name: str, node_type: str, cpus: int, gpus: int | None = None) -> NodeSpec:
    """A :class:`NodeSpec` for cluster.yaml's ``node_type``: its custom resources, ``cpus`` CPUs and
    its GPUs (or ``gpus``)."""
    from dgnode.cluster import node_type_resources

    offered = dict(node_type_resources(config)[node_type])
    gpu_count = int(offered.pop("GPU", 0) or 0) if gpus is None else gpus
    offered.pop("CPU", None)
    return NodeSpec(name, node_type, cpus, gpu_count, {k: float(v) for k, v in offered.items() if v})


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RayNode:
    """A started node: its ``ray start --block`` process (the session leader) and its Ray node id."""

    spec: NodeSpec
    process: subprocess.Popen
    log: Path
    temp_dir: str  # Ray's temp dir as the node sees it
    started_s: float = 0.0
    node_id: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def path(self, node_path: str | Path) -> Path:
        """Where ``node_path`` (as this node sees it) lies for the test: through the node's mount
        namespace (``/proc/PID/root``), while the node runs."""
        return Path(f"/proc/{self.pid}/root") / str(node_path).lstrip("/")

    def processes(self) -> list[int]:
        return session_processes(self.pid)


class MultiNodeCluster:
    """A head and worker nodes on this machine; see the module docstring.

    ``env`` is added to every node's environment (the AWS variables). ``private_dirs`` are the
    directories each worker node sees empty and private (``()``: none, the nodes share this
    machine's disk like nodes sharing a network file system: the baseline of
    ``bench/bench_storage.py``). After :meth:`start`: :attr:`address`
    (GCS), :attr:`dashboard_url` (job API), :meth:`client_env` (what ``ray job submit`` or a
    driver needs), :attr:`nodes` by name with their Ray node ids, :attr:`startup_s`.
    """

    def __init__(self, head: NodeSpec, workers: Sequence[NodeSpec], env: Mapping[str, str] | None = None,
                 private_dirs: Sequence[str | Path] | None = None, timeout_s: float = 180.0) -> None:
        if not workers or len({s.name for s in (head, *workers)}) != 1 + len(workers):
            raise ValueError("a multi-node cluster needs worker nodes with distinct names")
        self.head_spec, self.worker_specs = head, list(workers)
        self.env = dict(env or {})
        default = (tempfile.gettempdir(), REPO_ROOT)
        wanted = [str(Path(d).resolve()) for d in (default if private_dirs is None else private_dirs)]
        # A directory inside another private one is hidden with it (and its mount point would be).
        self.private_dirs = [d for d in wanted if not any(d != o and d.startswith(o.rstrip("/") + "/") for o in wanted)]
        self.timeout_s = timeout_s
        self.token = secrets.token_hex(16)
        self.root = Path(tempfile.mkdtemp(prefix="dgmn-", dir="/tmp"))  # short: Ray's socket paths are bounded
        self.nodes: dict[str, RayNode] = {}
        self.address: str | None = None
        self.dashboard_url: str | None = None
        self.startup_s: float | None = None
        self._ports = iter(range(20000 + (os.getpid() % 90) * 120, 32000))  # worker-port ranges, per node
        self._strays: dict[int, str] = {}  # pid -> start time of processes the nodes started elsewhere

    # -- environment --------------------------------------------------------------------------------

    def client_env(self) -> dict[str, str]:
        """The environment of a process that talks to this cluster (``ray job submit``, a driver)."""
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env.update(self.env, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token, RAY_USAGE_STATS_ENABLED="0")
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `python` = this venv
        return env

    def _node_env(self) -> dict[str, str]:
        return {**self.client_env(), **_HEALTH_CHECK, "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
                "AUTOSCALER_METRIC_PORT": str(free_port()), "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}

    # -- start / stop -------------------------------------------------------------------------------

    def start(self) -> "MultiNodeCluster":
        """Start the head, then every worker node at once; return when all are up (or stop all and raise)."""
        began = time.monotonic()
        try:
            port, dashboard = free_port(), free_port()
            head = self._launch(self.head_spec, [
                "--head", f"--port={port}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                f"--dashboard-port={dashboard}", f"--ray-client-server-port={free_port()}",
            ], private=False)
            self._wait_started([head])
            self.address = f"{_node_ip()}:{port}"
            self.dashboard_url = f"http://127.0.0.1:{dashboard}"
            workers = [self._launch(spec, [f"--address={self.address}"], private=True) for spec in self.worker_specs]
            self._wait_started(workers)
            self._wait_registered()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - began
        return self

    def _launch(self, spec: NodeSpec, role: list[str], private: bool) -> RayNode:
        isolated = private and bool(self.private_dirs)
        # An isolated node's temp dir lies in its own tmpfs, the others' in this cluster's root.
        temp_dir = f"{tempfile.gettempdir()}/ray-{spec.name}" if isolated else str(self.root / spec.name)
        low = next(self._ports)
        for _ in range(99):
            next(self._ports)
        labels = f"{NODE_TYPE_LABEL}={spec.node_type},{NODE_NAME_LABEL}={spec.name}"
        command = [
            RAY_BIN, "start", "--block", *role, "--node-ip-address=127.0.0.1", f"--num-cpus={spec.cpus}",
            f"--num-gpus={spec.gpus}", f"--object-store-memory={OBJECT_STORE_BYTES}", f"--labels={labels}",
            f"--temp-dir={temp_dir}", f"--min-worker-port={low}", f"--max-worker-port={low + 98}",
            f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
            f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
            "--disable-usage-stats",
        ]
        if spec.resources:
            command.append(f"--resources={json.dumps(dict(spec.resources))}")
        if isolated:
            # The mounts happen inside the new mount namespace, before Ray starts; `exec` keeps
            # `ray start` the session leader whose PID the cluster records.
            mounts = " && ".join(f"mount -t tmpfs -o size=2g,mode=1777 dgnode-node-{spec.name} '{d}'"
                                 for d in self.private_dirs)
            image = self._shared_image()
            if image:
                # The interpreter is the "image" every node shares, also when it lives inside a
                # private directory (a checkout's .venv): bound aside first, then back in place.
                aside = f"/run/dgnode-image-{self.token[:8]}-{spec.name}"
                mounts = (f"mkdir -p '{aside}' && mount --bind '{image}' '{aside}' && {mounts} && "
                          f"mkdir -p '{image}' && mount --bind '{aside}' '{image}'")
            command = ["unshare", "-m", "--propagation", "private", "sh", "-c", f'{mounts} && exec "$@"', "sh",
                       *command]
        log = self.root / f"{spec.name}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env=self._node_env(), cwd="/", start_new_session=True)
        node = RayNode(spec, process, log, temp_dir)
        node.started_s = time.monotonic()
        self.nodes[spec.name] = node
        return node

    def _shared_image(self) -> str | None:
        """This interpreter's prefix when it lies inside a private directory, else None."""
        prefix = str(Path(sys.prefix).resolve())
        inside = any(prefix.startswith(d.rstrip("/") + "/") for d in self.private_dirs)
        return prefix if inside else None

    def _wait_started(self, nodes: list[RayNode]) -> None:
        deadline = time.monotonic() + self.timeout_s
        waiting = list(nodes)
        while waiting:
            for node in list(waiting):
                if node.process.poll() is not None:
                    raise RuntimeError(f"node {node.spec.name} exited with {node.process.returncode}:\n"
                                       f"{self.log_tail(node.spec.name)}")
                if b"Ray runtime started" in node.log.read_bytes():
                    node.started_s = time.monotonic() - node.started_s
                    waiting.remove(node)
            if waiting and time.monotonic() > deadline:
                raise RuntimeError(f"node(s) {[n.spec.name for n in waiting]} not up within {self.timeout_s:.0f} s:\n"
                                   + "\n".join(self.log_tail(n.spec.name) for n in waiting))
            time.sleep(0.2)

    def _wait_registered(self) -> None:
        """Wait until the GCS lists every running node alive; learn their node ids (by their name label)."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            alive = {info.get("labels", {}).get(NODE_NAME_LABEL): node_id for node_id, info in self.gcs_nodes().items()
                     if info["alive"]}
            running = [name for name, node in self.nodes.items() if node.process.poll() is None]
            if all(name in alive for name in running):
                for name in running:
                    self.nodes[name].node_id = alive[name]
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the GCS lists {sorted(n for n in alive if n)} alive, expected {sorted(running)}")
            time.sleep(0.3)

    def gcs_nodes(self) -> dict[str, dict]:
        """Every node the GCS knows: node id -> {alive, labels, resources}, from a short-lived helper
        process (this process stays free of Ray state)."""
        script = ("import json,ray\nray.init(address=%r, log_to_driver=False, logging_level='ERROR')\n"
                  "print(json.dumps({n['NodeID']: {'alive': n['Alive'], 'labels': n.get('Labels') or {}, "
                  "'resources': n['Resources']} for n in ray.nodes()}))\nray.shutdown()\n") % self.address
        done = subprocess.run([sys.executable, "-c", script], env=self.client_env(), capture_output=True, text=True,
                              timeout=120, cwd="/")
        if done.returncode != 0:
            raise RuntimeError(f"listing the cluster's nodes failed: {done.stderr[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def add_node(self, spec: NodeSpec) -> RayNode:
        """Start one more worker node (isolated like the others), as an autoscaler replaces a lost one."""
        if spec.name in self.nodes and self.nodes[spec.name].process.poll() is None:
            raise ValueError(f"node {spec.name} is running")
        node = self._launch(spec, [f"--address={self.address}"], private=True)
        self._wait_started([node])
        self._wait_registered()
        return node

    # -- jobs and actors (the job API and the state API of the head's dashboard) -------------------

    def submit_job(self, entrypoint: Sequence[str], working_dir: str | Path = REPO_ROOT) -> str:
        """``ray job submit --no-wait`` of ``entrypoint`` with ``working_dir``; the job id."""
        command = [RAY_BIN, "job", "submit", "--address", self.dashboard_url, "--no-wait", "--working-dir",
                   str(working_dir), "--runtime-env-json", json.dumps({"excludes": WORKING_DIR_EXCLUDES}), "--",
                   *entrypoint]
        deadline = time.monotonic() + 120
        while True:
            done = subprocess.run(command, env=self.client_env(), capture_output=True, text=True, timeout=300)
            # The dashboard answers before the head's job agent has registered.
            if done.returncode == 0 or "No available agent" not in done.stdout + done.stderr:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(2)
        if done.returncode != 0:
            raise RuntimeError(f"ray job submit failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        return next(w.strip("'\"") for w in done.stdout.split() if w.strip("'\"").startswith("raysubmit_"))

    def job_status(self, job_id: str) -> str:
        """PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED."""
        return self._api(f"/api/jobs/{job_id}")["status"]

    def wait_job(self, job_id: str, timeout_s: float, poll=None) -> str:
        """Wait until the job ends (calling ``poll()`` every two seconds meanwhile); its final status,
        or TIMEOUT (the job is then stopped)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.job_status(job_id)
            if status in ("SUCCEEDED", "FAILED", "STOPPED"):
                return status
            if poll is not None:
                poll()
            time.sleep(2)
        self._api(f"/api/jobs/{job_id}/stop", method="POST")
        return "TIMEOUT"

    def job_logs(self, job_id: str) -> str:
        return self._api(f"/api/jobs/{job_id}/logs")["logs"]

    def actors(self) -> list[dict]:
        """Every actor the cluster has had (alive and dead): class_name, node_id, state, pid, job_id, ..."""
        answer = self._api("/api/v0/actors?detail=1&limit=10000")
        return answer["data"]["result"]["result"]

    def _api(self, path: str, method: str = "GET") -> dict:
        """The head's dashboard REST API (job and state API), with this cluster's token."""
        import urllib.request

        request = urllib.request.Request(f"{self.dashboard_url}{path}", method=method,
                                         headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def kill_node(self, name: str) -> int:
        """SIGKILL every process of worker node ``name`` at once (a lost machine); returns how many."""
        node = self.nodes[name]
        if node.spec is self.head_spec:
            raise ValueError("kill_node kills worker nodes only")
        killed: set[int] = set()
        deadline = time.monotonic() + 10
        # Again until none is left: a process forked just before its parent died joins late.
        while (pids := node.processes()) and time.monotonic() < deadline:
            doomed = {pid: start_time(pid) for pid in pids} | descendants(pids)
            kill_recorded(doomed)
            killed.update(doomed)
            time.sleep(0.05)
        node.process.wait(timeout=30)
        return len(killed)

    def stop(self) -> None:
        """Stop every node this cluster started (its session, by PID): workers, then the head; then
        what they started in sessions of their own (Ray's job manager runs a job's driver in a new
        session: a job still running would outlive its cluster, retrying the GCS for minutes)."""
        self._strays.update(self._descendants_elsewhere())
        for name in [n for n in self.nodes if n != self.head_spec.name] + [self.head_spec.name]:
            node = self.nodes.get(name)
            if node is None:
                continue
            if node.process.poll() is None or node.processes():
                stop_session(node.pid, grace_s=10.0)
            try:
                node.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        kill_recorded(self._strays)
        shutil.rmtree(self.root, ignore_errors=True)

    def _descendants_elsewhere(self) -> dict[int, str]:
        """Running descendants of the nodes' processes that are in no node's session."""
        sessions = {node.pid for node in self.nodes.values()}
        members = [pid for node in self.nodes.values() for pid in node.processes()]
        return {pid: started for pid, started in descendants(members).items() if session_of(pid) not in sessions}

    def leftover_processes(self) -> list[int]:
        """PIDs still running in any node's session or started by the nodes elsewhere (empty after :meth:`stop`)."""
        strays = [pid for pid, started in self._strays.items() if start_time(pid) == started]
        return [pid for node in self.nodes.values() for pid in node.processes()] + strays

    def log_tail(self, name: str, lines: int = 30) -> str:
        try:
            text = self.nodes[name].log.read_text(errors="replace")
        except (OSError, KeyError):
            return f"({name}: no log)"
        return f"--- {name} ---\n" + "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> "MultiNodeCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _node_ip() -> str:
    from ray._private.services import get_node_ip_address

    return get_node_ip_address()
