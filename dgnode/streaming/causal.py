"""Whether a model config predicts in real time (utterance ``i`` from utterances ``0..i`` only).

A model is causal when its config says so (``causal``: true for DGODE and CORECT with ``wf = 0``,
for ``bigru`` with ``causal = true``) or when it looks at one utterance only (``mlp``).
Torch-free, so a study can plan its modes without loading models.
"""

from __future__ import annotations

from typing import Any

from dgnode.errors import DgnodeError

__all__ = ["CONTEXT_FREE_MODELS", "NotCausalError", "causal_mode", "exact_causality", "require_causal"]

# Models that look at one utterance only: causal whatever their configuration.
CONTEXT_FREE_MODELS = ("mlp",)


class NotCausalError(DgnodeError):
    """The model looks at future utterances, so it cannot predict in real time."""


def causal_mode(model_config: Any) -> bool:
    """Whether a model config predicts utterance ``i`` from utterances ``0..i`` only."""
    if getattr(model_config, "name", None) in CONTEXT_FREE_MODELS:
        return True
    causal = getattr(model_config, "causal", None)
    return causal if isinstance(causal, bool) else False


def require_causal(model_config: Any, where: str | None = None) -> None:
    """Raise :class:`NotCausalError`, saying how to fix it, unless the config is causal."""
    if causal_mode(model_config):
        return
    name = getattr(model_config, "name", type(model_config).__name__)
    if hasattr(model_config, "wf"):
        how = f"it was trained with model.wf={model_config.wf} (future context); train it with --model.wf 0"
    elif hasattr(model_config, "causal"):
        how = "it was trained with model.causal=false (bidirectional); train it with --model.causal true"
    else:
        how = "it has no causal mode"
    where_text = f"{where}: " if where else ""
    raise NotCausalError(f"{where_text}model {name!r} is not causal, so it cannot stream: {how}")


def exact_causality(model: Any) -> bool:
    """``False`` when an adaptive ODE solver couples earlier outputs to later utterances, or the
    exact solver's number of terms (chosen from the dialogue's length) may differ between a
    prefix and the whole dialogue: both agree with the batch predictions within ``rtol`` only."""
    from dgnode.models.graph_ode import ADAPTIVE_METHODS, EXACT, GraphODE

    inexact = (*ADAPTIVE_METHODS, EXACT)
    return not any(isinstance(m, GraphODE) and m.config.method in inexact for m in model.modules())
