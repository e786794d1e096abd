"""Extraction: utterance manifest -> ImageBind vectors in the Parquet feature store, on Ray Data.

::

    manifest.parquet ─▶ drop utterances already stored (resume)
      ─▶ embedded batches (dgnode.embedding.stages: CPU decode tasks, embedding actors)
      ─▶ per batch on the driver: store rows, failure rows, provenance (dgnode.embedding.writer)

A re-run skips what is stored and retries what failed. A write the file system refuses (full
disk, read-only store) ends the run with one :class:`~dgnode.errors.EnvironmentFault` line; what
was stored is kept and the same command resumes. ``engine="process"`` runs the same
stages in a plain single-process loop (no Ray): the baseline of ``bench/bench_extract.py`` and a
debugging aid.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Callable, Literal

import numpy as np

from dgnode.embedding.config import ExtractConfig
from dgnode.embedding.model import HUGE_NEEDS_CHECKPOINT, SPECS, sha256_file
from dgnode.embedding.stages import plan_for, process_batches, ray_batches, ray_uses_gpu
from dgnode.embedding.summary import BatchReport, ExtractSummary
from dgnode.embedding.writer import BatchWriter
from dgnode.errors import EnvironmentFault, InputError
from dgnode.features.store import FeatureStore, StoreMetadata
from dgnode.media.utterance import VISION_TRANSPORT_DTYPE
from dgnode.options import to_dict
from dgnode.storage import resolve

__all__ = ["run_extraction", "store_metadata"]


def store_metadata(config: ExtractConfig, label_names: list[str], sha: str | None,
                   dataset: str | None = None) -> StoreMetadata:
    """The metadata of the store ``config`` writes: model, dims, label names, preprocessing, and
    the manifest's ``dataset`` (``extra.dataset``, as a pickle import records it)."""
    spec = SPECS[config.model]
    name = spec.name if config.checkpoint else f"{spec.name}(random-init, seed={config.seed})"
    preprocessing = to_dict(config.media)
    preprocessing["vision_transport_dtype"] = np.dtype(VISION_TRANSPORT_DTYPE).name
    return StoreMetadata(
        model=name,
        dims={m: spec.out_embed_dim for m in config.modalities},
        label_names=label_names,
        checkpoint_sha256=sha,
        source="imagebind",
        preprocessing=preprocessing,
        # model_kind and seed let dgnode.streaming.media rebuild the exact extraction model.
        extra={"manifest": resolve(config.manifest).uri, "model_kind": config.model, "seed": config.seed,
               **({"dataset": dataset} if dataset else {})},
    )


def run_extraction(
    config: ExtractConfig,
    *,
    engine: Literal["ray", "process"] = "ray",
    on_batch: Callable[[BatchReport], None] | None = None,
) -> ExtractSummary:
    """Extract every manifest utterance not yet in ``config.store``; returns the run's summary.

    ``on_batch`` is called after each batch is written (progress hooks; raising from it stops
    the run with everything written so far kept).
    """
    from dgnode.corpus.manifest import load_manifest

    started = time.perf_counter()
    if not config.manifest or not config.store:
        raise InputError("extraction needs a manifest and a store path")
    if config.model == "huge" and not config.checkpoint:
        raise InputError(HUGE_NEEDS_CHECKPOINT)
    if config.checkpoint and not Path(config.checkpoint).is_file():
        raise InputError("checkpoint file not found", path=config.checkpoint)
    if engine not in ("ray", "process"):
        raise ValueError(f"unknown engine {engine!r}")
    manifest = load_manifest(config.manifest, config.modalities)
    sha = sha256_file(config.checkpoint) if config.checkpoint else None
    store = FeatureStore.create(config.store, store_metadata(config, manifest.attrs["label_names"], sha,
                                                            manifest.attrs.get("dataset")))

    stored_before = store.stored_utt_ids()
    pending = manifest[~manifest["utt_id"].isin(stored_before)]
    already = len(manifest) - len(pending)
    if config.limit is not None:
        pending = pending.head(config.limit)
    summary = ExtractSummary(len(manifest), already, len(pending), engine=engine)
    if pending.empty:
        summary.wall_seconds = time.perf_counter() - started
        return summary

    writer = BatchWriter(store, manifest, config.manifest, config.modalities, summary)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(pending), unit="utt", desc="extract", disable=not config.progress)
    try:
        with contextlib.ExitStack() as stack:
            if engine == "ray":
                from dgnode.ray_session import ray_session

                stack.enter_context(ray_session(config.address))
                on_gpu = ray_uses_gpu(config)
            else:
                import torch

                on_gpu = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
            plan = plan_for(config, on_gpu)
            ray_batch = max(plan.sizes.values())
            source = ray_batches if engine == "ray" else process_batches
            batches = source(pending, config, plan, ray_batch, sha)
            summary.batch_plan, summary.ray_batch_size = dict(plan.sizes), ray_batch
            summary.device = "cuda" if on_gpu else "cpu"
            summary.memory_kind = "cuda_max_allocated" if on_gpu else "rss"
            stack.callback(batches.close)
            for index, batch in enumerate(batches):
                try:
                    report = writer.write(batch, index)
                except EnvironmentFault as fault:
                    raise EnvironmentFault(f"{fault.reason} ({summary.stored} utterance(s) stored by this run are kept)",
                                           path=fault.path) from None
                bar.update(len(report.utt_ids))
                bar.set_postfix(stored=summary.stored, failed=summary.failed)
                if on_batch is not None:
                    on_batch(report)
    finally:
        bar.close()
        summary.stage_seconds = {k: round(v, 3) for k, v in writer.seconds.items()}
        summary.wall_seconds = time.perf_counter() - started
    return summary
