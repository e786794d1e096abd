"""The causal study: models x {offline, causal} x seeds, with paired t-tests (``dgnode study``)."""

from dgnode.study.runner import RunRecord, StudyResult, run_study
from dgnode.study.spec import MODES, StudyRun, StudySpec, apply_mode, build_runs, model_config_path

__all__ = [
    "MODES",
    "RunRecord",
    "StudyResult",
    "StudyRun",
    "StudySpec",
    "apply_mode",
    "build_runs",
    "model_config_path",
    "run_study",
]
