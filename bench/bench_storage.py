"""Benchmark: the main job with everything on a shared local disk vs everything in a local S3 server.

Both variants, in one run, submit the same ``jobs/pipeline.py`` (``ray job submit``) to the same
shape of multi-node Ray cluster on this machine (``tests/raycluster.py``: a head that runs only the
drivers and ``--workers`` worker nodes of ``--cpus`` CPUs each), on the same generated corpus
(``--dialogs``), tiny random-init ImageBind, up to ``--actors`` embedding actors and a short search
(``--trials`` trials of ``--epochs`` epochs, one per worker node at a time):

* ``local``: the nodes share this machine's disk (as nodes sharing a network file system would);
  corpus, manifest, feature store, search directory and MLflow's artifacts are local paths.
* ``s3``: each worker node sees private, empty temp and checkout directories; the corpus (which the
  job generates on the head and uploads: stage ``synth corpus``), manifest, store, search directory
  and MLflow's artifacts are in a SeaweedFS server on 127.0.0.1 (``tests/seaweed.py``); decode
  tasks fetch each medium once per node.

Per variant: the job's wall time and its stages' seconds (``synth corpus``, ``scan``, ``extract``, ``tune + test``,
from the job's JSON), extraction's utterances/s; ``ratio_s3_over_local`` for each; and for ``s3``
the bytes (and objects, cache hits) each node fetched from the corpus, with the corpus's total
size for comparison. Cluster start-up is measured apart and not in the ratios. The MLflow tracking
server is the same kind in both (``mlflow/server.sh``, SQLite on the head); only its artifact
destination differs. ``--repeats`` alternates the variants (local first); the ratios are of the
medians over the repeats (every run is in ``runs``).

    python bench/bench_storage.py [--dialogs 10] [--trials 2] [--epochs 2] [--repeats 1] [--out result.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.report import emit  # noqa: E402

STAGES = ("synth corpus", "scan", "extract", "tune + test")


def run_job(cluster, workdir: str, tracking_uri: str, args: argparse.Namespace) -> dict:
    entrypoint = ["python", "jobs/pipeline.py", "--demo", "--workdir", workdir, "--synth.dialogs", str(args.dialogs),
                  "--tracking_uri", tracking_uri, "--baseline_config", "null",
                  "--extract_overrides", json.dumps({"num_actors": args.actors, "max_batch_size": args.batch}),
                  "--tune.trials", str(args.trials), "--tune.epochs", str(args.epochs),
                  "--tune.max_concurrent", str(args.workers), "--tune.cpus_per_worker", str(args.cpus),
                  "--tune.experiment", f"bench-{int(time.time() * 1000)}", "--progress", "false", "--json"]
    began = time.perf_counter()
    job = cluster.submit_job(entrypoint)
    status = cluster.wait_job(job, timeout_s=args.timeout)
    wall = time.perf_counter() - began
    logs = cluster.job_logs(job)
    if status != "SUCCEEDED":
        raise SystemExit(f"the {workdir} job ended {status}:\n{logs[-6000:]}")
    result = json.loads(logs.strip().splitlines()[-1])
    names = {node.node_id: name for name, node in cluster.nodes.items()}
    extraction = result.get("extraction", {})
    return {
        "job_s": round(wall, 2),
        "stage_seconds": {k: round(v, 2) for k, v in result["stage_seconds"].items()},
        "utterances": result["stored"],
        "extract_utt_per_s": round(extraction.get("utterances_per_second", 0.0), 3),
        "trials": result["trials"],
        "fetched_per_node": {names.get(node, node): counts for node, counts in extraction.get("fetched", {}).items()},
    }


@contextlib.contextmanager
def cluster_of(args: argparse.Namespace, env: dict[str, str], isolated: bool):
    from dgnode.cluster import load_cluster_config
    from tests.raycluster import MultiNodeCluster, typed_like

    config = load_cluster_config(REPO / "cluster.yaml")
    head = typed_like(config, "head", "head.cpu", cpus=0)
    workers = [typed_like(config, f"cpu{i + 1}", "worker.cpu.decode", cpus=args.cpus) for i in range(args.workers)]
    cluster = MultiNodeCluster(head, workers, env=env, private_dirs=None if isolated else ())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@contextlib.contextmanager
def mlflow_server(root: Path, artifacts: str, env: dict[str, str]):
    """``mlflow/server.sh`` on a free port with its artifacts at ``artifacts``; its URL."""
    from tests.raycluster import free_port
    from tests.tuning.server_process import kill_server, start_server

    port = free_port()
    pid = start_server(root, port, extra_env={**env, "MLFLOW_ARTIFACTS_DESTINATION": artifacts})
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        kill_server(pid, port)


def bench(args: argparse.Namespace, work: Path) -> dict:
    from tests.seaweed import SeaweedServer

    server = SeaweedServer(work / "seaweed").start()
    runs: dict[str, list[dict]] = {"local": [], "s3": []}
    startup: dict[str, list[float]] = {"local": [], "s3": []}
    try:
        bucket = server.make_bucket()
        env = server.env()
        for repeat in range(args.repeats):
            with mlflow_server(work / f"mlflow-local-{repeat}", str(work / f"artifacts-{repeat}"), env) as url, \
                    cluster_of(args, env, isolated=False) as cluster:
                startup["local"].append(cluster.startup_s)
                runs["local"].append(run_job(cluster, str(work / f"local-{repeat}"), url, args))
            with mlflow_server(work / f"mlflow-s3-{repeat}", f"s3://{bucket}/mlflow-{repeat}", env) as url, \
                    cluster_of(args, env, isolated=True) as cluster:
                startup["s3"].append(cluster.startup_s)
                runs["s3"].append(run_job(cluster, f"s3://{bucket}/work-{repeat}", url, args))
        corpus_bytes = _bytes_under(server, bucket, "work-0/corpus/")
    finally:
        server.stop()
    median = {variant: _medians(found) for variant, found in runs.items()}
    ratios = {"job": round(median["s3"]["job_s"] / median["local"]["job_s"], 3)}
    for stage in STAGES:
        local, s3 = median["local"]["stage_seconds"].get(stage), median["s3"]["stage_seconds"].get(stage)
        if local and s3:
            ratios[stage] = round(s3 / local, 3)
    return {"corpus_bytes": corpus_bytes,
            "cluster_startup_s": {k: [round(s, 1) for s in v] for k, v in startup.items()},
            "local": median["local"], "s3": median["s3"], "ratio_s3_over_local": ratios, "runs": runs}


def _bytes_under(server, bucket: str, prefix: str) -> int:
    pages = server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sum(obj["Size"] for page in pages for obj in page.get("Contents", []))


def _medians(runs: list[dict]) -> dict:
    """Median over the runs of the job's seconds, each stage's seconds and the extraction rate;
    the bytes each node fetched from the first run (the same corpus every time)."""
    def median(values) -> float:
        return round(statistics.median(values), 3)

    stages = sorted({stage for run in runs for stage in run["stage_seconds"]})
    return {
        "job_s": median(r["job_s"] for r in runs),
        "stage_seconds": {stage: median(r["stage_seconds"][stage] for r in runs if stage in r["stage_seconds"])
                          for stage in stages},
        "extract_utt_per_s": median(r["extract_utt_per_s"] for r in runs),
        "utterances": runs[0]["utterances"], "trials": runs[0]["trials"],
        "fetched_per_node": runs[0]["fetched_per_node"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dialogs", type=int, default=10, help="generated dialogues (about 10 utterances each)")
    parser.add_argument("--workers", type=int, default=2, help="worker nodes")
    parser.add_argument("--cpus", type=int, default=2, help="logical CPUs per worker node (and per trial)")
    parser.add_argument("--actors", type=int, default=2, help="embedding actors (at most)")
    parser.add_argument("--batch", type=int, default=8, help="utterances per embedding batch (at most)")
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each variant, alternating")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per job")
    parser.add_argument("--dir", help="work directory (default: a temporary one)")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    result: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_avg_at_start": os.getloadavg()},
        "settings": {k: v for k, v in vars(args).items() if k not in ("dir", "out")},
    }
    with tempfile.TemporaryDirectory(prefix="bench_storage_", dir=args.dir) as tmp:
        result.update(bench(args, Path(tmp)))
    result["machine"]["load_avg_at_end"] = os.getloadavg()
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
