"""The main job (``dgnode pipeline``, ``jobs/pipeline.py``): corpus -> scan -> extract -> tune -> test,
beside the baselines (``baselines``), reported by ``summary``.

Names resolve lazily (PEP 562), so ``dgnode --help`` does not load Ray.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"PipelineConfig": "run", "PipelineResult": "run", "run_pipeline": "run", "summary_table": "summary",
            "mlflow_ui_hint": "summary", "write_plots": "summary", "Baselines": "baselines",
            "majority_baseline": "baselines", "train_baselines": "baselines"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dgnode.pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(f"dgnode.pipeline.{_EXPORTS[name]}"), name)
