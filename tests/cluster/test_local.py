"""The local fake cluster (dgnode.cluster.local): node types built from cluster.yaml, a config
Ray accepts, and stopping exactly one process session.

Fast: no Ray processes; the session tests start `sleep`s of their own and end them by PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from dgnode import cluster as C
from dgnode.errors import DgnodeError, InputError


# ---- The fake cluster's node types come from cluster.yaml ------------------------------------


def test_fake_node_types_are_built_from_cluster_yaml(cluster_yaml: Path) -> None:
    store = C.FAKE_OBJECT_STORE_BYTES
    assert C.fake_node_types(cluster_yaml, max_workers_per_type=2) == {
        "worker.gpu.a10g.4cpu": {
            "resources": {"CPU": 4, "GPU": 1, "accelerator_type:A10G": 1, "object_store_memory": store},
            "node_config": {},
            "min_workers": 0,
            "max_workers": 2,
            "labels": {C.NODE_TYPE_LABEL: "worker.gpu.a10g.4cpu"},
        },
        "worker.gpu.a10g.8cpu": {
            "resources": {"CPU": 8, "GPU": 1, "accelerator_type:A10G": 1, "object_store_memory": store},
            "node_config": {},
            "min_workers": 0,
            "max_workers": 2,
            "labels": {C.NODE_TYPE_LABEL: "worker.gpu.a10g.8cpu"},
        },
        "worker.cpu.decode": {
            "resources": {"CPU": 16, "object_store_memory": store},
            "node_config": {},
            "min_workers": 0,
            "max_workers": 2,
            "labels": {C.NODE_TYPE_LABEL: "worker.cpu.decode"},
        },
    }
    uncapped = C.fake_node_types(cluster_yaml)
    assert {n: t["max_workers"] for n, t in uncapped.items()} == {
        "worker.gpu.a10g.4cpu": 4, "worker.gpu.a10g.8cpu": 2, "worker.cpu.decode": 4,
    }


def test_fake_autoscaling_config_passes_rays_validation(config: dict) -> None:
    from ray.autoscaler._private.util import validate_config

    fake = C.fake_autoscaling_config(config, gcs_address="127.0.0.1:40000", max_workers_per_type=2)
    validate_config(fake)
    assert fake["provider"]["type"] == "fake_multinode"
    assert fake["provider"]["gcs_address"] == "127.0.0.1:40000"
    assert fake["head_node_type"] == C.FAKE_HEAD_NODE_TYPE
    assert fake["available_node_types"][C.FAKE_HEAD_NODE_TYPE] == {"resources": {"CPU": 4}, "node_config": {}, "max_workers": 0}
    assert fake["max_workers"] == 6 and fake["idle_timeout_minutes"] == 0.1


# ---- Stopping exactly one session -----------------------------------------------------------


def test_stop_session_ends_the_session_and_nothing_else() -> None:
    # A leader that ignores SIGTERM (as `ray start --block` drains first), a child that ignores
    # it too (so needs SIGKILL) and one that ends on SIGTERM.
    leader = subprocess.Popen(
        ["bash", "-c", "(trap '' TERM; exec sleep 301) & sleep 300 & trap '' TERM; wait"], start_new_session=True
    )
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        def commands() -> list[str]:
            return sorted(Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").strip()
                          for pid in C.session_processes(leader.pid) if pid != leader.pid)

        deadline = time.monotonic() + 10  # until both children have exec'd sleep (the trap is set)
        while commands() != ["sleep 300", "sleep 301"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert commands() == ["sleep 300", "sleep 301"]
        started = time.monotonic()
        assert C.stop_session(leader.pid, grace_s=2) == 1  # the TERM-ignoring child
        assert time.monotonic() - started < 6
        assert C.session_processes(leader.pid) == []
        leader.wait(timeout=5)  # already reaped by stop_session: no TimeoutExpired
        assert bystander.poll() is None
    finally:
        for proc in (leader, bystander):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    with pytest.raises(DgnodeError, match="it is this process's own session"):
        C.stop_session(os.getsid(0))


def test_stop_recorded_cluster_cleans_up_after_a_dead_owner(tmp_path: Path) -> None:
    import tempfile

    temp_dir = Path(tempfile.mkdtemp(prefix=C.TEMP_PREFIX, dir="/tmp"))
    # Like Ray's processes, the recorded head names its temp dir on its command line.
    head = subprocess.Popen(["bash", "-c", "sleep 300 & wait", str(temp_dir)], start_new_session=True)
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)
    pid_file = tmp_path / "head.pid"
    try:
        pid_file.write_text(f"{head.pid}\n{temp_dir}\n")
        assert C.stop_recorded_cluster(pid_file) == 0
        assert C.session_processes(head.pid) == []
        assert not temp_dir.exists() and not pid_file.exists()
        assert C.stop_recorded_cluster(pid_file) == 0  # nothing recorded: nothing to do

        # A PID whose session does not name the temp dir (a reused PID) is left alone, and a
        # directory this module did not create is never deleted.
        pid_file.write_text(f"{stranger.pid}\n{tmp_path}\n")
        assert C.stop_recorded_cluster(pid_file) == 0
        time.sleep(0.2)
        assert stranger.poll() is None and tmp_path.is_dir() and not pid_file.exists()
    finally:
        for proc in (head, stranger):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)
    pid_file.write_text("not-a-pid\n")
    with pytest.raises(InputError, match=r"head.pid:1: expected a PID on the first line, got 'not-a-pid'"):
        C.stop_recorded_cluster(pid_file)
