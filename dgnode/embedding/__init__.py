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

from __future__ import annotations

import importlib

_EXPORTS = {
    "ExtractConfig": "dgnode.embedding.config",
    "build_imagebind": "dgnode.embedding.model",
    "BatchPlan": "dgnode.embedding.memory",
    "plan_batch_sizes": "dgnode.embedding.memory",
    "EmbedActor": "dgnode.embedding.actor",
    "Embedder": "dgnode.embedding.actor",
    "BatchReport": "dgnode.embedding.summary",
    "ExtractSummary": "dgnode.embedding.summary",
    "run_extraction": "dgnode.embedding.pipeline",
    "store_metadata": "dgnode.embedding.pipeline",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'dgnode.embedding' has no attribute {name!r}")
