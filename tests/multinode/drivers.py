"""Ray drivers the multi-node tests run in their own process against a :class:`MultiNodeCluster`.

A driver is a separate process, as on a real cluster, so the test process never holds Ray state
(other tests of the same session may hold an in-process local Ray) and Ray reads this cluster's
token from a fresh environment. ``python -m tests.multinode.drivers NAME JSON_KWARGS`` connects to
``RAY_ADDRESS`` with this checkout as the job's working dir, runs ``NAME(**kwargs)`` and prints
its JSON result as the last line. :func:`run_driver` does that from a test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

from tests.raycluster import REPO_ROOT, WORKING_DIR_EXCLUDES


def run_driver(cluster, name: str, timeout_s: float = 300.0, **kwargs: Any) -> Any:
    """Run driver ``name`` against ``cluster`` in a new process; its JSON result."""
    env = {**cluster.client_env(), "RAY_ADDRESS": cluster.address, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-m", "tests.multinode.drivers", name, json.dumps(kwargs)], env=env,
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise AssertionError(f"driver {name} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _pinned(node_id: str):
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id, soft=False)


def _probe(path: str, write: str | None) -> dict:
    """Runs on a node: optionally write ``path``, then report the node and what it sees there."""
    import ray

    import dgnode

    if write is not None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(write)
    seen = open(path).read() if os.path.exists(path) else None
    return {"node_id": ray.get_runtime_context().get_node_id(), "path": path, "seen": seen,
            "aws_endpoint": os.environ.get("AWS_ENDPOINT_URL"), "dgnode": os.path.dirname(dgnode.__file__)}


def probe(calls: list[dict]) -> list[dict]:
    """Each call ``{node_id, path, write}`` in order, on its node: what that node saw."""
    import ray

    remote = ray.remote(num_cpus=0)(_probe)
    return [ray.get(remote.options(scheduling_strategy=_pinned(c["node_id"])).remote(c["path"], c.get("write")))
            for c in calls]


def _write_part(batch: dict, prefix: str) -> dict:
    """Ray Data map body: write this batch as one Parquet object under ``prefix`` (dgnode.storage)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray

    from dgnode.storage import resolve

    node = ray.get_runtime_context().get_node_id()
    ids = [int(i) for i in batch["id"]]
    table = pa.table({"id": ids, "node_id": [node] * len(ids)})
    part = resolve(prefix) / f"part-{node[:12]}-{uuid.uuid4().hex[:8]}.parquet"
    part.write_with(lambda handle: pq.write_table(table, handle))
    return {"id": ids, "node_id": [node] * len(ids), "part": [part.uri] * len(ids)}


def write_parts(prefix: str, rows: int, tasks: int) -> list[dict]:
    """A Ray Data map of ``rows`` ids in batches of 5 over at most ``tasks`` concurrent one-CPU
    tasks, each batch written to S3 as one Parquet object; the map's output rows."""
    import ray

    dataset = ray.data.range(rows, override_num_blocks=rows // 5).map_batches(
        _write_part, fn_kwargs={"prefix": prefix}, batch_size=5, num_cpus=1,
        compute=ray.data.TaskPoolStrategy(size=tasks))
    return dataset.to_pandas().to_dict("records")


def main(argv: list[str]) -> int:
    import ray

    name, kwargs = argv[0], json.loads(argv[1])
    ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False, logging_level="WARNING",
             runtime_env={"working_dir": str(REPO_ROOT), "excludes": WORKING_DIR_EXCLUDES})
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        result = globals()[name](**kwargs)
    finally:
        ray.shutdown()
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
