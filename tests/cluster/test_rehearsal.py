"""rehearse_autoscaling (dgnode.cluster.rehearsal): cluster.yaml's autoscaling, rehearsed on this
machine with Ray's fake multi-node provider.

The slow test runs `dgnode cluster rehearse` in a subprocess (the session's in-process
`ray_local` may be up in this one): it starts a separate Ray head whose autoscaler launches fake
nodes typed like cluster.yaml's worker types, pushes extraction-shaped GPU work (Ray Data actor
pool, num_gpus=1) and tuning-shaped work through it, waits for the idle workers to be removed and
stops. If the subprocess dies or times out, the teardown ends the head's session by the PID it
wrote, so no Ray process outlives the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dgnode import cluster as C
from dgnode.errors import DgnodeError

GPU_TYPES = {"worker.gpu.a10g.4cpu", "worker.gpu.a10g.8cpu"}
# `dgnode cluster ...` with only this package's commands (the full `dgnode` CLI loads every stage).
DGNODE_CLUSTER = ("import sys; from dgnode.command import run_command; from dgnode.cluster.cli import COMMANDS; "
                  "sys.exit(run_command(COMMANDS, sys.argv[1:]))")


def test_rehearsal_refuses_a_process_with_ray_initialised(monkeypatch: pytest.MonkeyPatch, cluster_yaml: Path) -> None:
    import ray

    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    with pytest.raises(DgnodeError, match="Ray is already initialised in this process"):
        C.rehearse_autoscaling(cluster_yaml)


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.is_file() else f"(no {path.name})"


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_gpu_workers_come_up_for_gpu_stages_and_go_when_idle(repo_root: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "head.pid"
    report_path = tmp_path / "report.json"
    log_dir = tmp_path / "logs"
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_MODE")}
    command = [
        sys.executable, "-c", DGNODE_CLUSTER, "cluster", "rehearse",
        "--cluster_yaml", str(repo_root / "cluster.yaml"),
        "--rows", "32", "--max_actors", "2", "--trials", "2",
        "--idle_timeout_minutes", "0.1", "--max_workers_per_type", "2",
        "--json", str(report_path), "--pid_file", str(pid_file), "--log_dir", str(log_dir),
    ]
    try:
        run = subprocess.run(command, cwd=repo_root, env=env, capture_output=True, text=True, timeout=420)
    finally:
        # The CLI removes the PID file when it stopped its cluster; a file left means it did not.
        pid_file_left = pid_file.exists()
        C.stop_recorded_cluster(pid_file)
    diagnostics = f"{run.stdout}\n{run.stderr[-4000:]}\n--- monitor.log ---\n{_tail(log_dir / 'monitor.log')}"
    assert run.returncode == 0, diagnostics
    report = json.loads(report_path.read_text())

    # The fake cluster was typed from cluster.yaml: every worker offered its type's resources.
    expected = C.node_type_resources(C.load_cluster_config(repo_root / "cluster.yaml"))
    assert report["head_resources"] == {"CPU": 4, "GPU": 0}
    assert report["head_gpus_max"] == 0
    assert report["nodes"], diagnostics
    for node in report["nodes"]:
        assert node["resources"] == expected[node["node_type"]], node

    # GPU demand brought up GPU workers only, at most the per-type cap, and the work ran there.
    extraction, tuning = report["stages"]
    assert (extraction["name"], extraction["units"], extraction["units_done"]) == ("extract.imagebind", 32, 32)
    assert (tuning["name"], tuning["units"], tuning["units_done"]) == ("tune.trial_worker", 2, 2)
    for stage in (extraction, tuning):
        assert set(stage["node_types_used"]) <= GPU_TYPES, stage
        assert sum(stage["node_types_used"].values()) == stage["units"]
        assert stage["gpu_ids_seen"] == ["0"]  # each fake GPU node has one GPU, id 0
    launched_gpu = {t: n for t, n in report["launched"].items() if t in GPU_TYPES}
    assert sum(launched_gpu.values()) >= 1, report["launched"]
    # Ray Data may also ask the autoscaler for CPUs (request_resources) when its CPU tasks queue
    # on a loaded machine: a CPU worker may join, but only of a cluster.yaml type.
    assert set(report["launched"]) <= set(expected) - {"head.cpu"}, report["launched"]
    assert all(1 <= count <= 2 for count in report["peak"].values()), report["peak"]
    assert report["scale_up_s"] is not None and 0 < report["scale_up_s"] < 120

    # Idle workers were removed, and the local cluster left no process behind.
    assert report["scale_down_s"] is not None and report["workers_left"] == 0, diagnostics
    assert all(node["down_s"] is not None and node["down_s"] > node["up_s"] for node in report["nodes"])
    assert C.session_processes(report["head_pid"]) == []
    assert not pid_file_left
    print(json.dumps({**{k: report[k] for k in ("startup_s", "scale_up_s", "scale_down_s", "stop_s", "total_s", "launched")},
                      "stage_s": [s["seconds"] for s in report["stages"]]}))
