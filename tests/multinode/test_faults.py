"""A worker node lost while the main job runs on the multi-node cluster (everything in S3).

The node is SIGKILLed whole (its raylet, Ray workers and agents at once: a machine that vanished),
once in the middle of extraction and once in the middle of a multi-worker trial. The job must still
succeed: Ray Data restarts the embedding actor and retries the decode tasks elsewhere (the store
keeps each utterance once however often a batch is redone), and Tune / Ray Train restart the trial
from its last checkpoint in S3 (``--tune.max_failures``). No MLflow run may be left RUNNING.
"""

from __future__ import annotations

import time

import pytest

from tests.multinode.support import job_result, mlflow_runs, pipeline_entrypoint, pipeline_nodes, store_counts

pytestmark = [pytest.mark.slow, pytest.mark.cluster_faults]


class _KillWhen:
    """A ``wait_job`` poll: SIGKILL the worker node of the first alive actor of ``marker`` once
    ``ready()`` holds; remembers which node and when."""

    def __init__(self, cluster, marker: str, ready) -> None:
        self.cluster, self.marker, self.ready = cluster, marker, ready
        self.killed: str | None = None
        self.node_id: str | None = None
        self.at: float | None = None

    def __call__(self) -> None:
        if self.killed is not None:
            return
        by_id = {node.node_id: name for name, node in self.cluster.nodes.items() if name != "head"}
        alive = [a for a in self.cluster.actors() if self.marker in a["class_name"] and a["state"] == "ALIVE"
                 and a["node_id"] in by_id]
        if alive and self.ready():
            self.node_id = alive[0]["node_id"]
            self.killed = by_id[self.node_id]
            self.cluster.kill_node(self.killed)
            self.at = time.monotonic()
            print(f"\nkilled node {self.killed} ({self.node_id[:8]}) running {alive[0]['class_name']}", flush=True)


def _no_run_left_running(tracking_uri: str, result: dict) -> None:
    runs = mlflow_runs(tracking_uri, result["experiment_id"])
    running = [(r.info.run_name, r.info.run_id) for r in runs if r.info.status == "RUNNING"]
    assert not running, f"MLflow runs left RUNNING: {running}"


def test_job_survives_a_worker_node_lost_during_extraction(start_cluster, cluster_config, mlflow_s3,
                                                          bucket, s3_env):
    from dgnode.corpus.manifest import load_manifest
    from dgnode.features.store import METADATA_FILE, FeatureStore
    from dgnode.storage import resolve

    cluster = start_cluster(*pipeline_nodes(cluster_config))
    workdir = f"s3://{bucket}/fault-extract"
    store = f"{workdir}/features-tiny"
    stored_at_kill: list[int] = []

    def some_stored() -> bool:
        if not (resolve(store) / METADATA_FILE).exists():
            return False
        count = len(FeatureStore.open(store).stored_utt_ids())
        stored_at_kill[:] = [count]
        return count > 0

    kill = _KillWhen(cluster, "EmbedActor", some_stored)
    job = cluster.submit_job(pipeline_entrypoint(workdir, mlflow_s3, "--tune.trials", "2",
                                                 "--tune.experiment", "fault-extract"))
    result = job_result(cluster, job, cluster.wait_job(job, timeout_s=720, poll=kill))
    assert kill.killed, "extraction ended before a node could be killed in its middle"
    manifest = load_manifest(f"{workdir}/scan/manifest.parquet")
    print(f"\nkilled {kill.killed} ({kill.node_id[:8]}) with {stored_at_kill} of {len(manifest)} utterances stored")
    assert 0 < stored_at_kill[0] < len(manifest), "the node was not lost in the middle of extraction"

    # Nothing lost, nothing duplicated: the store holds every utterance exactly once.
    rows, stored = store_counts(store)
    assert stored == set(manifest["utt_id"]) and rows == len(manifest)
    # Ray restarted the lost embedding actor, on the surviving worker node.
    survivor = {cluster.nodes[n].node_id for n in ("cpu1", "cpu2")} - {kill.node_id}
    embedders = [a for a in cluster.actors() if "EmbedActor" in a["class_name"]]
    print(f"embedding actors: {[(a['node_id'][:8], a['state'], a.get('num_restarts')) for a in embedders]}")
    assert any(int(a.get("num_restarts") or 0) >= 1 and a["node_id"] in survivor for a in embedders), embedders
    _no_run_left_running(mlflow_s3, result)


def test_job_survives_a_worker_node_lost_during_a_multi_worker_trial(start_cluster, cluster_config,
                                                                    mlflow_s3, bucket, s3_env):
    from dgnode.storage import resolve
    from dgnode.tuning.callbacks import read_ledger
    from dgnode.tuning.mlflow_callback import EPOCHS_TAG, KIND_TAG, TRIAL_TAG
    from dgnode.tuning.search import LEDGER_FILE

    cluster = start_cluster(*pipeline_nodes(cluster_config))
    workdir = f"s3://{bucket}/fault-trial"
    trials = 2

    def checkpointed() -> bool:
        # A trial's Ray Train run has a checkpoint in S3 (something to restart from).
        searches = resolve(workdir).children("search-*", kind="dir")
        runs = searches[-1].join("train").children("*", kind="dir") if searches else []
        return any(run.children("checkpoint_*", kind="dir") for run in runs)

    kill = _KillWhen(cluster, "RayTrainWorker", checkpointed)
    job = cluster.submit_job(pipeline_entrypoint(
        workdir, mlflow_s3, "--tune.trials", str(trials), "--tune.epochs", "3", "--tune.max_concurrent", "1",
        "--tune.workers_per_trial", "2", "--tune.cpus_per_worker", "0.5", "--tune.max_failures", "2",
        "--tune.experiment", "fault-trial"))
    result = job_result(cluster, job, cluster.wait_job(job, timeout_s=720, poll=kill))
    assert kill.killed, "no multi-worker trial ran long enough to lose a node in its middle"
    print(f"\nkilled {kill.killed} ({kill.node_id[:8]}) during a trial")

    # Every trial ended once, after all its epochs: as many ledger entries and MLflow trial runs as
    # trials, each FINISHED with 3 epochs run (the lost node's trial went on from its checkpoint).
    assert result["trials"] == trials and result["model_uri"]
    ledger = read_ledger(resolve(result["search_dir"]) / LEDGER_FILE)
    assert sorted(ledger.values()) == ["TERMINATED"] * trials, ledger
    runs = mlflow_runs(mlflow_s3, result["experiment_id"])
    trial_runs = [r for r in runs if r.data.tags.get(KIND_TAG) == "trial"]
    described = [(r.info.run_name, r.info.status, r.data.tags.get(EPOCHS_TAG)) for r in trial_runs]
    assert sorted(r.data.tags[TRIAL_TAG] for r in trial_runs) == sorted(ledger), described
    assert all(r.info.status == "FINISHED" and r.data.tags.get(EPOCHS_TAG) == "3" for r in trial_runs), described
    # From its checkpoint, not from scratch: no trial reported its first epoch twice.
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_s3)
    steps = {r.info.run_name: sorted(m.step for m in client.get_metric_history(r.info.run_id, "valid_wf1"))
             for r in trial_runs}
    print(f"valid_wf1 steps per trial run: {steps}")
    assert all(s.count(0) == 1 and set(s) == {0, 1, 2} for s in steps.values()), steps
    _no_run_left_running(mlflow_s3, result)
    # Ray Train started the lost trial's worker group again, on the surviving node: more training
    # workers than the trials' two each.
    trainers = [a for a in cluster.actors() if "RayTrainWorker" in a["class_name"]]
    survivor = {cluster.nodes[n].node_id for n in ("cpu1", "cpu2")} - {kill.node_id}
    print(f"training workers: {[(a['node_id'][:8], a['state']) for a in trainers]}")
    assert len(trainers) > 2 * trials and {a["node_id"] for a in trainers} & survivor


def test_a_search_left_without_nodes_saves_itself_and_stops(start_cluster, cluster_config, mlflow_s3, bucket, s3_env):
    """Both worker nodes lost mid-search on a cluster without an autoscaler: the restarted trial can
    never be placed (the head has no CPUs), so after ``--tune.stall_timeout_s`` the job ends with
    one line naming what a trial needs and what is left, the search saved for ``--resume``, its
    parent run KILLED and no run RUNNING (instead of waiting forever)."""
    from mlflow import MlflowClient

    from dgnode.storage import resolve
    from dgnode.tuning.search import SEARCH_RECORD

    cluster = start_cluster(*pipeline_nodes(cluster_config))
    workdir = f"s3://{bucket}/fault-stall"
    killed: list[str] = []

    def kill_both_once_a_trial_runs() -> None:
        workers = {node.node_id: name for name, node in cluster.nodes.items() if name != "head"}
        if not killed and any("ImplicitFunc" in a["class_name"] and a["state"] == "ALIVE" and a["node_id"] in workers
                              for a in cluster.actors()):
            for name in sorted(workers.values()):
                cluster.kill_node(name)
                killed.append(name)
            print(f"\nkilled {killed} while a trial ran", flush=True)

    job = cluster.submit_job(pipeline_entrypoint(
        workdir, mlflow_s3, "--tune.max_failures", "1", "--tune.stall_timeout_s", "5", "--tune.experiment", "fault-stall"))
    status = cluster.wait_job(job, timeout_s=600, poll=kill_both_once_a_trial_runs)
    logs = cluster.job_logs(job)
    assert killed, "no trial ran on a worker node"
    assert status == "FAILED", f"{status}\n{logs[-4000:]}"
    errors = [line for line in logs.splitlines() if line.startswith("dgnode: error:")]
    assert len(errors) == 1 and "no trial can start any more: one trial needs 2 CPUs and 0 GPUs" in errors[0] \
        and "the Ray cluster has 0 CPUs" in errors[0] and "dgnode tune --resume --out s3://" in errors[0], logs[-4000:]
    search_dir = errors[0].split("--resume --out ", 1)[1].split()[0]
    assert (resolve(search_dir) / SEARCH_RECORD).exists()  # resumable once nodes are back
    client = MlflowClient(mlflow_s3)
    experiment = client.get_experiment_by_name("fault-stall")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    parents = [r for r in runs if r.data.tags.get("dgnode.run_kind") == "search"]
    assert [r.info.status for r in parents] == ["KILLED"], [(r.info.run_name, r.info.status, r.data.tags) for r in runs]
