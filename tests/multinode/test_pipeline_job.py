"""The main job on a multi-node cluster that shares nothing but S3: `ray job submit jobs/pipeline.py`
with the corpus, the feature store, the search directory and MLflow's artifacts all in the S3 server.

The worker nodes see private, empty temp and checkout directories (tests/raycluster.py), and the
head has no CPUs for tasks, so every decode task, embedding actor and trial runs on a node that
can reach the head's files only through S3. What ran where is read from Ray's state API.
"""

from __future__ import annotations

import time

import pytest

from tests.multinode.support import (
    EXTRACT_BOTH_ACTORS,
    job_result,
    mlflow_runs,
    node_ids_of,
    pipeline_entrypoint,
    pipeline_nodes,
    store_counts,
)

pytestmark = pytest.mark.slow


def test_pipeline_job_runs_across_nodes_with_everything_in_s3(start_cluster, cluster_config, mlflow_s3,
                                                             bucket, s3_server, s3_env):
    from mlflow import MlflowClient

    from dgnode.corpus.manifest import load_manifest
    from dgnode.storage import resolve
    from dgnode.tuning.search import SUMMARY_FILE

    cluster = start_cluster(*pipeline_nodes(cluster_config))
    workers = {cluster.nodes[n].node_id for n in ("cpu1", "cpu2")}
    workdir = f"s3://{bucket}/work"
    began = time.monotonic()
    job = cluster.submit_job(pipeline_entrypoint(workdir, mlflow_s3, "--tune.experiment", "multinode",
                                                 extract=EXTRACT_BOTH_ACTORS))
    status = cluster.wait_job(job, timeout_s=720)
    result = job_result(cluster, job, status)
    print(f"\npipeline job: {time.monotonic() - began:.0f} s; stages {result['stage_seconds']}")

    # Extraction actors and trials ran on both worker nodes (and nothing ran on the head).
    embedders, trials = node_ids_of(cluster, "EmbedActor"), node_ids_of(cluster, "ImplicitFunc")
    print(f"embedding actors on {sorted(n[:8] for n in embedders)}, trials on {sorted(n[:8] for n in trials)}")
    assert embedders == workers, f"embedding actors ran on {embedders}, workers are {workers}"
    assert trials == workers, f"trials ran on {trials}, workers are {workers}"

    # The corpus is objects in the bucket: the scan's media are URIs, which both worker nodes
    # fetched (the extraction counts what each node fetched, by node id).
    manifest = load_manifest(f"{workdir}/scan/manifest.parquet")
    assert all(str(p).startswith(f"{workdir}/corpus/") for p in manifest["video_path"])
    fetched = result["extraction"]["fetched"]
    print(f"fetched per node: { {n[:8]: c for n, c in fetched.items()} }")
    assert set(fetched) == workers and all(c["bytes"] > 0 for c in fetched.values())

    # Every utterance of the manifest is stored, exactly once, in the store in S3.
    assert result["store"] == f"{workdir}/features-tiny"
    rows, stored = store_counts(result["store"])
    assert stored == set(manifest["utt_id"]) and rows == len(stored) == len(manifest) == result["stored"]

    # The search directory is in S3, with its summary.
    assert result["search_dir"].startswith(f"{workdir}/search-")
    assert (resolve(result["search_dir"]) / SUMMARY_FILE).is_file()

    # The best model is registered, its artifacts are objects in the bucket, and no run is left RUNNING.
    assert result["trials"] == 4 and result["model_uri"]
    client = MlflowClient(mlflow_s3)
    model_id = result["model_uri"].removeprefix("models:/")
    versions = client.search_model_versions("name='multinode'")
    assert any(model_id in (v.model_id, v.source.removeprefix("models:/")) for v in versions), \
        f"{model_id} is not a version of 'multinode': {[(v.version, v.model_id, v.source) for v in versions]}"
    keys = s3_server.keys(bucket, "mlflow/")
    assert any(model_id in key and key.endswith("MLmodel") for key in keys), f"no MLmodel of {model_id} in the bucket"
    runs = mlflow_runs(mlflow_s3, result["experiment_id"])
    assert not [r.info.run_id for r in runs if r.info.status == "RUNNING"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == result["parent_run_id"]]
    assert len(children) >= 4 and all(r.info.status in ("FINISHED", "FAILED", "KILLED") for r in children)
