"""ImageBind extraction at scale.

* :mod:`dgnode.embedding.model`: ``build_imagebind("huge" | "tiny", checkpoint)``.
* :mod:`dgnode.embedding.memory`: per-item memory cost model -> batch size per modality.
* :mod:`dgnode.embedding.actor`: chunked, OOM-tolerant embedding; the Ray Data actor.
* :mod:`dgnode.embedding.pipeline`: manifest -> Ray Data -> feature store (``run_extraction``).
* :mod:`dgnode.embedding.cli`: ``dgnode extract``.
"""
