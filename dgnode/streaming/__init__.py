"""Real-time prediction with causal models: one utterance at a time (:class:`StreamingPredictor`).

* :mod:`dgnode.streaming.causal`: :func:`causal_mode`, :func:`require_causal` (torch-free);
* :mod:`dgnode.streaming.predictor`: :class:`StreamingPredictor`, :func:`latency_summary`;
* :mod:`dgnode.streaming.media`: :class:`MediaEncoder`, raw utterance media -> the store's vectors;
* :mod:`dgnode.streaming.replay`: stored dialogues replayed through a run (``dgnode predict``).

Names are imported lazily so that importing the package does not load torch.
"""

from dgnode.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "dgnode.streaming.causal": ("CONTEXT_FREE_MODELS", "NotCausalError", "causal_mode", "require_causal"),
    "dgnode.streaming.predictor": ("Prediction", "StreamingPredictor", "latency_summary"),
    "dgnode.streaming.media": ("MediaEncoder",),
    "dgnode.streaming.replay": ("Replay", "predict_dialogues", "select_conversations", "stream_dialogues"),
})
