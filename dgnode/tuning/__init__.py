"""Hyperparameter search: Ray Tune + Optuna TPE + ASHA, every trial an MLflow run.

* :mod:`~dgnode.tuning.settings`: :class:`TuneSettings`; :mod:`~dgnode.tuning.space`: search spaces;
* :mod:`~dgnode.tuning.search`: :func:`run_search` (new or resumed), the best model tested once;
* :mod:`~dgnode.tuning.trainable`: the trial functions; :mod:`~dgnode.tuning.callbacks`,
  :mod:`~dgnode.tuning.mlflow_callback`, :mod:`~dgnode.tuning.results`: the driver's side;
* :mod:`~dgnode.tuning.trust`: :func:`refuse_untrusted`, a search directory private before a resume.

Names resolve lazily (PEP 562), so ``dgnode --help`` does not load Ray.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"TuneSettings": "settings", "SearchOutcome": "search", "run_search": "search",
            "SearchSpace": "space", "load_search_space": "space"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dgnode.tuning' has no attribute {name!r}")
    return getattr(importlib.import_module(f"dgnode.tuning.{_EXPORTS[name]}"), name)
