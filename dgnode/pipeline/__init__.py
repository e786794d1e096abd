"""The main job (``dgnode pipeline``, ``jobs/pipeline.py``): corpus -> scan -> extract -> tune -> test,
beside the baselines (``baselines``), reported by ``summary``.

Names resolve lazily (PEP 562), so ``dgnode --help`` does not load Ray.
"""

from dgnode.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "dgnode.pipeline.run": ("PipelineConfig", "PipelineResult", "run_pipeline"),
    "dgnode.pipeline.summary": ("summary_table", "mlflow_ui_hint", "write_plots"),
    "dgnode.pipeline.baselines": ("Baselines", "majority_baseline", "train_baselines"),
})
