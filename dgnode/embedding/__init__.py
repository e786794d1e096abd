"""ImageBind extraction at scale.

* :mod:`dgnode.embedding.config`: :class:`ExtractConfig`, every option of a run.
* :mod:`dgnode.embedding.model`: ``build_imagebind("huge" | "tiny", checkpoint)``.
* :mod:`dgnode.embedding.memory`: per-item memory cost model -> batch size per modality.
* :mod:`dgnode.embedding.probe`: a forward pass's peak memory from torch's allocator events.
* :mod:`dgnode.embedding.transfer`: host rows -> device, pinned and overlapped with compute.
* :mod:`dgnode.embedding.actor`: chunked, OOM-tolerant embedding; the Ray Data actor.
* :mod:`dgnode.embedding.stages`: manifest rows -> embedded batches (Ray Data or one process).
* :mod:`dgnode.embedding.writer`: embedded batches -> store rows, failures, provenance.
* :mod:`dgnode.embedding.summary`: :class:`ExtractSummary`, :class:`BatchReport`.
* :mod:`dgnode.embedding.pipeline`: :func:`run_extraction`, the driver.
* :mod:`dgnode.embedding.cli`: ``dgnode extract``.

Names are imported lazily so that importing the package does not load torch.
"""

from dgnode.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "dgnode.embedding.config": ("ExtractConfig",),
    "dgnode.embedding.model": ("build_imagebind",),
    "dgnode.embedding.memory": ("BatchPlan", "plan_batch_sizes"),
    "dgnode.embedding.actor": ("EmbedActor", "Embedder"),
    "dgnode.embedding.summary": ("BatchReport", "ExtractSummary"),
    "dgnode.embedding.pipeline": ("run_extraction", "store_metadata"),
})
