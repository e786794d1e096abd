"""The multi-node harness itself (tests/raycluster.py): typed nodes, private node-local paths, S3
as the one thing the nodes share, a Ray Data map spread over two worker nodes, and teardown."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from tests.multinode.drivers import run_driver
from tests.raycluster import NODE_NAME_LABEL, REPO_ROOT, typed_like

pytestmark = pytest.mark.slow


def test_nodes_are_typed_like_cluster_yaml(three_nodes):
    by_name = {info["labels"][NODE_NAME_LABEL]: info for info in three_nodes.gcs_nodes().values() if info["alive"]}
    assert set(by_name) == {"head", "gpu1", "decode1"}
    assert by_name["gpu1"]["labels"]["dgnode.io/node-type"] == "worker.gpu.a10g.4cpu"
    assert by_name["gpu1"]["resources"]["GPU"] == 1 and by_name["gpu1"]["resources"]["accelerator_type:A10G"] == 1
    assert by_name["gpu1"]["resources"]["CPU"] == 1
    assert "GPU" not in by_name["decode1"]["resources"] and by_name["decode1"]["resources"]["CPU"] == 1
    assert "CPU" not in by_name["head"]["resources"]  # nothing heavy runs on the head
    assert len({n.node_id for n in three_nodes.nodes.values()}) == 3
    print(f"\nstart-up: {three_nodes.startup_s:.1f} s in all; per node "
          + ", ".join(f"{n}: {node.started_s:.1f} s" for n, node in three_nodes.nodes.items()))


def test_a_file_written_on_one_worker_node_is_invisible_on_the_others(three_nodes, tmp_path):
    a, b = three_nodes.nodes["gpu1"], three_nodes.nodes["decode1"]
    paths = [tmp_path / "stage" / "out.txt", REPO_ROOT / f"node-local-{uuid.uuid4().hex}.txt",
             Path("/tmp") / f"x-{uuid.uuid4().hex}"]
    calls = []
    for where in map(str, paths):
        calls += [{"node_id": a.node_id, "path": where, "write": "from A"},  # A writes
                  {"node_id": b.node_id, "path": where},                   # B looks
                  {"node_id": b.node_id, "path": where, "write": "from B"},  # B writes its own
                  {"node_id": a.node_id, "path": where}]                   # A still sees its own
    seen = run_driver(three_nodes, "probe", calls=calls)
    for i, where in enumerate(paths):
        wrote, other, own_b, again = seen[4 * i: 4 * i + 4]
        assert wrote["node_id"] == a.node_id and wrote["seen"] == "from A"
        assert other["node_id"] == b.node_id and other["seen"] is None, f"{where} written on A is visible on B"
        assert own_b["seen"] == "from B" and again["seen"] == "from A"
        assert not where.exists(), f"{where} written on A is visible on the head"
        assert a.path(where).read_text() == "from A" and b.path(where).read_text() == "from B"


def test_tasks_on_every_node_see_the_s3_variables_and_this_checkout(three_nodes, s3_server):
    nodes = list(three_nodes.nodes.values())
    seen = run_driver(three_nodes, "probe", calls=[{"node_id": n.node_id, "path": "/nonexistent"} for n in nodes])
    assert [s["node_id"] for s in seen] == [n.node_id for n in nodes]
    assert all(s["aws_endpoint"] == s3_server.endpoint for s in seen)
    # The job's working dir as unpacked on each node (not the editable install of another checkout).
    assert all("runtime_resources" in s["dgnode"] for s in seen), [s["dgnode"] for s in seen]


def test_ray_data_map_spreads_over_two_nodes_and_writes_to_s3(three_nodes, s3_server):
    import pyarrow.parquet as pq

    from dgnode.storage import resolve

    prefix = f"s3://{s3_server.make_bucket()}/parts"
    rows = 40
    out = run_driver(three_nodes, "write_parts", prefix=prefix, rows=rows, tasks=2)
    workers = {three_nodes.nodes[n].node_id for n in ("gpu1", "decode1")}
    assert sorted(r["id"] for r in out) == list(range(rows))
    assert {r["node_id"] for r in out} == workers, "the map did not run on both worker nodes"

    # Every object the tasks wrote is in the bucket; read back here, they hold every row once.
    env = s3_server.env()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        parts = resolve(prefix).children("*.parquet")
        assert sorted(p.uri for p in parts) == sorted({r["part"] for r in out})
        read = []
        for part in parts:
            with part.open_input() as handle:
                read.extend(pq.read_table(handle).to_pylist())
    assert sorted(r["id"] for r in read) == list(range(rows))
    assert {r["node_id"] for r in read} == workers


def test_a_killed_node_is_gone_and_stop_ends_every_process(start_cluster, cluster_config, tmp_path):
    cluster = start_cluster(typed_like(cluster_config, "head", "head.cpu", cpus=0),
                            [typed_like(cluster_config, "w1", "worker.cpu.decode", cpus=1),
                             typed_like(cluster_config, "w2", "worker.cpu.decode", cpus=1)])
    pids = {name: node.processes() for name, node in cluster.nodes.items()}
    assert all(len(p) >= 2 for p in pids.values()), pids  # `ray start` and at least its raylet
    assert cluster.kill_node("w1") >= len(pids["w1"]) and not cluster.nodes["w1"].processes()
    deadline = time.monotonic() + 60
    while True:
        alive = {i["labels"].get(NODE_NAME_LABEL) for i in cluster.gcs_nodes().values() if i["alive"]}
        if alive == {"head", "w2"}:
            break
        assert time.monotonic() < deadline, f"alive after killing w1: {alive}"
        time.sleep(1)
    # A job still running when the cluster stops: Ray runs its driver in a session of its own.
    job = cluster.submit_job(["python", "-c", "import time; time.sleep(600)"], working_dir=tmp_path)
    deadline = time.monotonic() + 120
    while cluster.job_status(job) != "RUNNING":
        assert time.monotonic() < deadline, f"the job is {cluster.job_status(job)}"
        time.sleep(1)
    drivers = [pid for pid in _sleepers() if pid not in sum(pids.values(), [])]
    assert drivers, "no job driver found"
    cluster.stop()
    assert not cluster.leftover_processes()
    assert not [pid for group in pids.values() for pid in group if _running(pid)]
    assert not [pid for pid in drivers if _running(pid)], "the job's driver outlived its cluster"


def _sleepers() -> list[int]:
    """PIDs of the processes running this test's job (its command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"time.sleep(600)" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False
