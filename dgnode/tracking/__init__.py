"""MLflow tracking: runs that always end, what produced them, and runs side by side.

* :mod:`dgnode.tracking.runs`: :func:`ensure_experiment`, :func:`tracked_run` /
  :class:`TrackedRun` (params, per-epoch metrics, evaluations, models), :func:`end_dangling_runs`;
* :mod:`dgnode.tracking.logged_model`: the registered model, a pyfunc that loads without unpickling
  (:class:`DialogueModel`, :func:`fetch_run_dir` for ``dgnode predict --model``);
* :mod:`dgnode.tracking.provenance`: :func:`provenance_tags` (git commit, library versions);
* :mod:`dgnode.tracking.evaluation`: one split's evaluation as metrics, CSVs and a confusion figure;
* :mod:`dgnode.tracking.server`: :func:`resolve_tracking_uri`, :func:`check_tracking_uri`,
  :func:`bounded_http_retries`, :func:`server_unreachable`;
* :mod:`dgnode.tracking.compare`: :func:`compare_runs` (``dgnode compare``).

Importing the package does not load MLflow: every module imports it where it is used.
"""

from dgnode.tracking.compare import RunRow, compare_runs, plot_comparison, render_table
from dgnode.tracking.evaluation import confusion_figure
from dgnode.tracking.provenance import git_commit, library_versions, provenance_tags
from dgnode.tracking.runs import (
    EPOCH_METRICS,
    RunStatus,
    TrackedRun,
    TrackingError,
    child_runs,
    end_dangling_runs,
    ensure_experiment,
    tracked_run,
)
from dgnode.tracking.server import (
    TrackingUnavailableError,
    bounded_http_retries,
    check_tracking_uri,
    resolve_tracking_uri,
    server_unreachable,
)

__all__ = [
    "EPOCH_METRICS",
    "RunRow",
    "RunStatus",
    "TrackedRun",
    "TrackingError",
    "TrackingUnavailableError",
    "bounded_http_retries",
    "check_tracking_uri",
    "child_runs",
    "compare_runs",
    "confusion_figure",
    "end_dangling_runs",
    "ensure_experiment",
    "git_commit",
    "library_versions",
    "plot_comparison",
    "provenance_tags",
    "render_table",
    "resolve_tracking_uri",
    "server_unreachable",
    "tracked_run",
]
