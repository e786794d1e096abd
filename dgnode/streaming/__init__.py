"""Real-time prediction with causal models: one utterance at a time (:class:`StreamingPredictor`).

* :mod:`dgnode.streaming.causal`: :func:`causal_mode`, :func:`require_causal` (torch-free);
* :mod:`dgnode.streaming.predictor`: :class:`StreamingPredictor`, :func:`latency_summary`;
* :mod:`dgnode.streaming.media`: :class:`MediaEncoder`, raw utterance media -> the store's vectors;
* :mod:`dgnode.streaming.replay`: stored dialogues replayed through a run (``dgnode predict``).

Names are imported lazily so that importing the package does not load torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "CONTEXT_FREE_MODELS": "dgnode.streaming.causal",
    "NotCausalError": "dgnode.streaming.causal",
    "causal_mode": "dgnode.streaming.causal",
    "require_causal": "dgnode.streaming.causal",
    "Prediction": "dgnode.streaming.predictor",
    "StreamingPredictor": "dgnode.streaming.predictor",
    "latency_summary": "dgnode.streaming.predictor",
    "MediaEncoder": "dgnode.streaming.media",
    "Replay": "dgnode.streaming.replay",
    "predict_dialogues": "dgnode.streaming.replay",
    "select_conversations": "dgnode.streaming.replay",
    "stream_dialogues": "dgnode.streaming.replay",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'dgnode.streaming' has no attribute {name!r}")
