"""Hyperparameter search: Ray Tune + Optuna TPE + ASHA, every trial an MLflow run.

* :mod:`~dgnode.tuning.settings`: :class:`TuneSettings`; :mod:`~dgnode.tuning.space`: search spaces;
* :mod:`~dgnode.tuning.search`: :func:`run_search` (new or resumed), the best model tested once;
* :mod:`~dgnode.tuning.trainable`: the trial functions; :mod:`~dgnode.tuning.callbacks`,
  :mod:`~dgnode.tuning.mlflow_callback`, :mod:`~dgnode.tuning.results`: the driver's side;
* :mod:`~dgnode.tuning.retention`: which trial checkpoints a search keeps (none a saved state may name);
* :mod:`~dgnode.tuning.trust`: :func:`refuse_untrusted`, a search directory private before a resume
  (an ``s3://`` search prefix: the bucket's access control).

Names resolve lazily (PEP 562), so ``dgnode --help`` does not load Ray.
"""

from dgnode.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "dgnode.tuning.settings": ("TuneSettings",),
    "dgnode.tuning.search": ("SearchOutcome", "run_search"),
    "dgnode.tuning.space": ("SearchSpace", "load_search_space"),
})
