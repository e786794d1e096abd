"""Real-time prediction with causal models: one utterance at a time (:class:`StreamingPredictor`)."""

from dgnode.streaming.predictor import (
    NotCausalError,
    Prediction,
    StreamingPredictor,
    causal_mode,
    latency_summary,
    require_causal,
)

__all__ = [
    "NotCausalError",
    "Prediction",
    "StreamingPredictor",
    "causal_mode",
    "latency_summary",
    "require_causal",
]
