"""What the multi-node pipeline tests share: the cluster's shape, the job's command line, and
reading back what the job left in Ray, MLflow and S3."""

from __future__ import annotations

from tests.raycluster import MultiNodeCluster, NodeSpec, typed_like

# The generated corpus of the pipeline tests: 10 dialogues (about 100 utterances), enough for
# every split and for extraction to last long enough to lose a node in the middle of it.
CORPUS_DIALOGS = 10


def pipeline_nodes(cluster_config: dict) -> tuple[NodeSpec, list[NodeSpec]]:
    """The pipeline tests' cluster: a head that runs only drivers (no CPUs for tasks: every task,
    actor and trial runs on an isolated worker node) and two two-CPU worker nodes typed like
    ``worker.cpu.decode`` (no fake GPU: the tiny ImageBind would be asked for CUDA)."""
    return (typed_like(cluster_config, "head", "head.cpu", cpus=0),
            [typed_like(cluster_config, f"cpu{i}", "worker.cpu.decode", cpus=2) for i in (1, 2)])


# Up to two embedding actors, on batches small enough for Ray Data to start the second one. The
# job test starts both at once (EXTRACT_BOTH_ACTORS: Ray Data spreads them over the worker nodes;
# a pool left to grow from one stayed at one under load); the fault tests must not, since a pool
# held at two actors on the one node left has no CPU for its decode tasks.
EXTRACT_OVERRIDES = '{"num_actors": 2, "max_batch_size": 8}'
EXTRACT_BOTH_ACTORS = '{"num_actors": 2, "min_actors": 2, "max_batch_size": 8}'


def pipeline_entrypoint(workdir: str, tracking_uri: str, *extra: str, extract: str = EXTRACT_OVERRIDES) -> list[str]:
    """``python jobs/pipeline.py --demo`` with its workdir in S3: the job generates the mini corpus
    on the head and uploads it there, so the corpus, manifest, store and search directory are all
    objects the worker nodes read; the tiny ImageBind, up to two embedding actors and a search of
    two-CPU trials (one per worker node at a time)."""
    return ["python", "jobs/pipeline.py", "--demo", "--workdir", workdir, "--synth.dialogs", str(CORPUS_DIALOGS),
            "--tracking_uri", tracking_uri, "--extract_overrides", extract, "--baseline_config", "null",
            "--tune.trials", "4", "--tune.epochs", "2", "--tune.max_concurrent", "2", "--tune.cpus_per_worker", "2",
            "--progress", "false", "--json", *extra]


def job_result(cluster: MultiNodeCluster, job_id: str, status: str) -> dict:
    """The job's JSON result line, or a failure showing the end of its log."""
    import json

    logs = cluster.job_logs(job_id)
    assert status == "SUCCEEDED", f"job {job_id}: {status}\n--- log ---\n{logs[-8000:]}"
    return json.loads(logs.strip().splitlines()[-1])


def node_ids_of(cluster: MultiNodeCluster, class_marker: str) -> set[str]:
    """Nodes where actors whose class name contains ``class_marker`` ran (alive or dead)."""
    return {a["node_id"] for a in cluster.actors() if class_marker in a["class_name"]}


def mlflow_runs(tracking_uri: str, experiment_id: str) -> list:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri).search_runs([experiment_id], max_results=1000)


def store_counts(store_uri: str) -> tuple[int, set[str]]:
    """The store's row count (repeats of an utterance included) and its distinct utterance ids;
    needs the S3 server's AWS variables in this process (the ``s3_env`` fixture)."""
    from dgnode.features.store import FeatureStore

    store = FeatureStore.open(store_uri)
    return len(store), store.stored_utt_ids()
