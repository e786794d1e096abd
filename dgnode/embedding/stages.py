"""The stages between the manifest rows and the embedded batches, on Ray Data or in one process.

::

    pending manifest rows ─▶ ray.data.from_pandas (one block per decode batch)
      ─▶ map_batches(preprocess_udf)                 CPU tasks: decode + cut + preprocess
      ─▶ map_batches(EmbedActor, ActorPoolStrategy)  one model per actor (GPU when there is one),
                                                     bounded batches from the memory cost model
      ─▶ iter_batches on the driver

Media in object storage (``s3://`` paths in the manifest) are fetched by the decode tasks into
their node's cache (:mod:`dgnode.media.fetch`); then each dialogue is one block, so its
utterances are decoded by one task on one node and its AVI crosses the network once, not once
per node that got one of its batches. Each decode batch says what its node fetched
(:data:`~dgnode.media.utterance.FETCH_COLUMNS` and ``fetch_node``, the Ray node id), which the
driver sums per node (:mod:`dgnode.embedding.writer`). A local corpus keeps fixed-size blocks.

Only the columns the CPU stage reads travel (``utt_id`` and the media columns): the store's key
columns are joined back on the driver by ``utt_id`` (:mod:`dgnode.embedding.writer`), because a
numpy batch cannot carry the nullable integer label without an encoding, and failure rows need
the manifest's media paths anyway.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import torch

from dgnode.embedding.config import ExtractConfig
from dgnode.embedding.memory import BatchPlan, plan_batch_sizes
from dgnode.embedding.model import SPECS
from dgnode.media.config import MediaCacheConfig, MediaConfig
from dgnode.media.fetch import MediaCache, is_remote
from dgnode.media.utterance import REQUEST_COLUMNS, preprocess_batch

__all__ = ["FETCH_NODE_COLUMN", "LOCAL_NODE", "decode_chunks", "model_dtype", "plan_for", "preprocess_udf",
           "process_batches", "ray_batches", "ray_uses_gpu"]

# Which node a decode batch ran on (the Ray node id; LOCAL_NODE without Ray).
FETCH_NODE_COLUMN = "fetch_node"
LOCAL_NODE = "local"

# Host memory of a decode task: the worker itself (Python, torch, decord, Ray: Ray Data measured
# up to 860 MB for a worker running batches of 4 here, and wants 25% headroom) plus, per utterance, 10 decoded 720x480
# RGB frames (10 MB), float copies while resizing (about 20 MB) and the float32 then float16
# output (18 + 9 MB), rounded up.
PREPROCESS_WORKER_BYTES = 1024 * 2**20
PREPROCESS_BYTES_PER_ITEM = 64 * 2**20


def preprocess_udf(batch: pd.DataFrame, modalities: Sequence[str], media: MediaConfig,
                   media_cache: MediaCacheConfig | None = None) -> dict[str, np.ndarray]:
    """Ray Data task body (CPU): :func:`dgnode.media.utterance.preprocess_batch` through this
    node's media cache, with the node's id."""
    import ray

    out = preprocess_batch(batch, modalities, media, MediaCache(media_cache))
    node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else LOCAL_NODE
    out[FETCH_NODE_COLUMN] = np.full(len(batch), node)
    return out


def decode_chunks(pending: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    """The blocks of the decode stage: one per dialogue when media are remote (module
    docstring), else ``size`` rows each, in manifest order; only :data:`REQUEST_COLUMNS`."""
    requests = pending[[c for c in REQUEST_COLUMNS if c in pending.columns]]
    media = [c for c in ("wav_path", "video_path") if c in pending.columns]
    remote = any(is_remote(v) for c in media for v in pending[c].dropna())
    if remote and "dialog_id" in pending.columns:
        return [requests.loc[index] for _, index in pending.groupby("dialog_id", sort=False).groups.items()]
    return [requests.iloc[i : i + size] for i in range(0, len(requests), size)]


def model_dtype(config: ExtractConfig, on_gpu: bool) -> str:
    """The dtype the embedding actors run in: ``config.dtype``, or float16 on a GPU, float32 on the CPU."""
    if config.dtype != "auto":
        return config.dtype
    return "float16" if on_gpu else "float32"


def plan_for(config: ExtractConfig, on_gpu: bool, capped: bool = True) -> BatchPlan:
    """Batch sizes per modality from the cost model for the actors' dtype, at most
    ``config.max_batch_size`` unless ``capped`` is false (what the memory alone allows)."""
    return plan_batch_sizes(
        SPECS[config.model],
        config.modalities,
        gpu_memory_gb=config.gpu_memory_gb,
        element_bytes=getattr(torch, model_dtype(config, on_gpu)).itemsize,
        max_batch=config.max_batch_size if capped else None,
    )


def ray_uses_gpu(config: ExtractConfig) -> bool:
    """Whether the embedding actors ask Ray for a GPU.

    ``device="cuda"`` always does, also while the cluster has no GPU node yet: the request is
    what makes an autoscaling cluster start one (with ``--num_actors N`` the pool may grow to N).
    ``"auto"`` uses GPUs when the cluster has some now; ``"cpu"`` never does.
    """
    import ray

    if config.device == "cuda":
        return True
    if config.device == "cpu":
        return False
    return int(ray.cluster_resources().get("GPU", 0)) > 0


def ray_batches(
    pending: pd.DataFrame, config: ExtractConfig, plan: BatchPlan, ray_batch: int, sha: str | None
) -> Iterator[dict[str, np.ndarray]]:
    """Embedded batches of ``pending`` from the Ray Data pipeline (Ray must be connected)."""
    import ray
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the driver draws its own bar
    gpus = int(ray.cluster_resources().get("GPU", 0))
    use_gpu = ray_uses_gpu(config)
    actors = config.num_actors or (max(gpus, 1) if use_gpu else 1)
    # Small blocks, so the CPU stage runs as many parallel tasks (a dialogue each for remote media).
    dataset = ray.data.from_pandas(decode_chunks(pending, config.decode_batch_size))
    dataset = dataset.map_batches(
        preprocess_udf,
        batch_size=config.decode_batch_size,
        batch_format="pandas",
        fn_kwargs={"modalities": config.modalities, "media": config.media, "media_cache": config.media_cache},
        compute=ray.data.TaskPoolStrategy(size=config.decode_tasks),
        num_cpus=1,
        # A real estimate, and it keeps Ray Data from fusing these tasks into the embedding
        # actors (it fuses maps with equal resource requests), which would serialise decoding.
        memory=PREPROCESS_WORKER_BYTES + config.decode_batch_size * PREPROCESS_BYTES_PER_ITEM,
    )
    from dgnode.embedding.actor import EmbedActor

    dataset = dataset.map_batches(
        EmbedActor,
        batch_size=ray_batch,
        batch_format="numpy",
        # Two batches per actor: the next one's inputs reach the actor while the current one runs.
        compute=ray.data.ActorPoolStrategy(min_size=min(config.min_actors, max(1, actors)), max_size=max(1, actors),
                                           max_tasks_in_flight_per_actor=2),
        fn_constructor_kwargs=_actor_kwargs(config, plan, sha, "cuda" if use_gpu else "cpu"),
        num_gpus=1 if use_gpu else 0,
        num_cpus=1,
    )
    iterator = iter(dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1))
    try:
        yield from iterator
    finally:
        # Stops the streaming executor (and its actors) when the driver stops early.
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def process_batches(
    pending: pd.DataFrame, config: ExtractConfig, plan: BatchPlan, ray_batch: int, sha: str | None
) -> Iterator[dict[str, np.ndarray]]:
    """The same batches from a plain loop in this process (no Ray): a baseline and a debugging aid."""
    from dgnode.embedding.actor import EmbedActor

    actor = EmbedActor(**_actor_kwargs(config, plan, sha, config.device))
    cache = MediaCache(config.media_cache)
    requests = pending[[c for c in REQUEST_COLUMNS if c in pending.columns]]
    for start in range(0, len(requests), ray_batch):
        part = requests.iloc[start : start + ray_batch]
        pieces = [
            preprocess_batch(part.iloc[i : i + config.decode_batch_size], config.modalities, config.media, cache)
            for i in range(0, len(part), config.decode_batch_size)
        ]
        batch = {key: np.concatenate([p[key] for p in pieces]) for key in pieces[0]}
        batch[FETCH_NODE_COLUMN] = np.full(len(part), LOCAL_NODE)
        yield actor(batch)


def _actor_kwargs(config: ExtractConfig, plan: BatchPlan, sha: str | None, device: str) -> dict[str, Any]:
    return {
        "kind": config.model,
        "modalities": config.modalities,
        "chunk_sizes": plan.sizes,
        "checkpoint": str(Path(config.checkpoint).resolve()) if config.checkpoint else None,
        "checkpoint_sha256": sha,
        "device": device,
        "dtype": model_dtype(config, device == "cuda" or (device == "auto" and torch.cuda.is_available())),
        "seed": config.seed,
        "simulate_oom_above": config.simulate_oom_above,
        "text_config": config.media.text,
    }
