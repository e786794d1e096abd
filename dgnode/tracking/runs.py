"""MLflow runs that always end: params, per-epoch metrics, provenance tags, evaluation artifacts, models.

Everything goes through an explicit :class:`mlflow.MlflowClient` bound to one tracking URI and
one run id, never through MLflow's process-global "active run": Ray Tune runs several trials in
threads of reused actor processes, and a global active run would leak between them.

Typical use (the driver resolves and checks the URI and creates the experiment first)::

    uri = resolve_tracking_uri(options.tracking_uri)
    check_tracking_uri(uri)
    experiment_id = ensure_experiment(uri, "dgode-iemocap")
    with tracked_run(uri, experiment_id, run_name="trial-3", parent_run_id=parent) as run:
        run.log_config(config)
        for epoch in ...:
            run.log_epoch({"epoch": epoch, "train_loss": ..., "valid_wf1": ...})
        run.log_evaluation(report, split="test")
        run.log_model(config, trainer.model_state(), data.normalisation, registered_name="dgode-iemocap")

The run ends FINISHED when the block exits normally, FAILED on an exception (with the error as
the ``dgnode.error`` tag) and KILLED on ``KeyboardInterrupt``/``SystemExit``; see
:func:`tracked_run` for how a Tune trial stopped by its scheduler is told apart.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from dgnode.errors import DgnodeError
from dgnode.options import flatten
from dgnode.tracking.evaluation import confusion_csv, confusion_figure, evaluation_metrics, per_class_csv, per_class_f1
# git_commit, library_versions and provenance_tags are imported from here by trainers and searches.
from dgnode.tracking.provenance import git_commit, library_versions, model_requirements, provenance_tags

__all__ = [
    "EPOCH_METRICS",
    "ERROR_TAG",
    "PARENT_TAG",
    "STOP_REASON_TAG",
    "RunStatus",
    "TrackedRun",
    "TrackingError",
    "child_runs",
    "end_dangling_runs",
    "ensure_experiment",
    "git_commit",
    "library_versions",
    "provenance_tags",
    "tracked_run",
]

# Metric names written once per epoch by trainers and trials (the contract with `dgnode compare`).
EPOCH_METRICS = ("train_loss", "valid_wf1", "valid_acc", "nfe", "epoch_time")
DIAGNOSTIC_PREFIX = "diag_"  # model diagnostics per epoch (e.g. diag_ode_growth_bound), logged with them
# MLflow caps a param value at 6000 characters and a log_batch call at 100 params / 1000 metrics.
MAX_PARAM_LENGTH = 6000
PARAMS_PER_BATCH = 100
METRICS_PER_BATCH = 1000
PARENT_TAG = "mlflow.parentRunId"
ERROR_TAG = "dgnode.error"
STOP_REASON_TAG = "dgnode.stop_reason"


class RunStatus:
    """MLflow's terminal run states (strings, as ``MlflowClient.set_terminated`` takes them)."""

    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    RUNNING = "RUNNING"


class TrackingError(DgnodeError):
    """An MLflow call failed in a way the user must act on (bad experiment name, registry error)."""


def ensure_experiment(tracking_uri: str, name: str, artifact_location: str | None = None) -> str:
    """The id of experiment ``name``, created if missing; a deleted one is restored.

    Call on the driver before trials start: two trials creating the same experiment (and, on a
    fresh SQLite file, the same tables) at once race. With a ``sqlite:///`` URI and no
    ``artifact_location``, artifacts go to ``mlartifacts/`` beside the database file (the layout
    of ``mlflow/server.sh``) instead of MLflow's default ``./mlruns`` under whatever the current
    directory is.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if not name or not name.strip():
        raise TrackingError("experiment name must not be empty")
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None and artifact_location is None and tracking_uri.startswith("sqlite:///"):
        database = tracking_uri[len("sqlite:///"):]
        if database and database != ":memory:":
            artifact_location = (Path(database).resolve().parent / "mlartifacts").as_uri()
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location)
        except MlflowException:
            # Another driver created it between our lookup and create: use theirs.
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id


class TrackedRun:
    """One MLflow run, addressed by id through an explicit client."""

    def __init__(self, tracking_uri: str, run_id: str, experiment_id: str) -> None:
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.client = MlflowClient(tracking_uri)
        # A body may decide its own terminal state (e.g. a scheduler-stopped trial is complete).
        self.status_on_exit: str | None = None

    # -- params and tags ---------------------------------------------------------------------
    def log_config(self, config: Any, prefix: str = "") -> int:
        """Log a (dataclass or nested dict) config as flattened ``a.b.c`` params; returns the count."""
        data = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
        return self.log_params(flatten(data, prefix))

    def log_params(self, params: Mapping[str, Any]) -> int:
        from mlflow.entities import Param

        items = [Param(str(k), _param_value(v)) for k, v in params.items()]
        for start in range(0, len(items), PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[start : start + PARAMS_PER_BATCH], synchronous=True)
        return len(items)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(str(k), str(v)[:MAX_PARAM_LENGTH]) for k, v in tags.items()]
        for start in range(0, len(items), PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, tags=items[start : start + PARAMS_PER_BATCH], synchronous=True)

    # -- metrics -----------------------------------------------------------------------------
    def log_metrics(self, metrics: Mapping[str, Any], step: int = 0) -> None:
        """Log numeric values at ``step``; ``None`` and non-numeric values are skipped."""
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        items = [
            Metric(str(k), float(v), timestamp, int(step))
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        for start in range(0, len(items), METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=items[start : start + METRICS_PER_BATCH], synchronous=True)

    def log_epoch(self, metrics: Mapping[str, Any]) -> None:
        """Log the per-epoch metrics (:data:`EPOCH_METRICS`, :data:`DIAGNOSTIC_PREFIX`) at step ``metrics["epoch"]``."""
        step = int(metrics.get("epoch", 0))
        self.log_metrics({k: v for k, v in metrics.items() if k in EPOCH_METRICS or k.startswith(DIAGNOSTIC_PREFIX)}, step=step)

    # -- artifacts -----------------------------------------------------------------------------
    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        self.client.log_text(self.run_id, json.dumps(_jsonable(data), indent=2), artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_evaluation(self, report: Mapping[str, Any], label_names: Sequence[str], split: str,
                       log_metrics: bool = True) -> dict[str, float]:
        """Log one split's evaluation: summary metrics and report / confusion / per-class artifacts.

        ``report`` has ``accuracy``, ``weighted_f1`` (fractions in [0, 1]), ``per_class_f1``
        (one value per label, or a ``{label: f1}`` mapping) and ``confusion`` (rows = true
        class, columns = predicted), as a trainer's evaluation result converts to with
        ``dataclasses.asdict``. Returns the metrics logged: ``{split}_acc``, ``{split}_wf1``
        and ``{split}_f1.<label>`` (only the artifacts with ``log_metrics=False``, e.g. when the
        run already holds ``valid_wf1`` per epoch).
        """
        per_class = per_class_f1(report.get("per_class_f1"), label_names)
        metrics = evaluation_metrics(report, per_class, split)
        if log_metrics:
            self.log_metrics(metrics)
        self.log_dict(dict(report), f"evaluation/{split}_report.json")
        self.log_text(per_class_csv(per_class), f"evaluation/{split}_per_class_f1.csv")
        confusion = report.get("confusion")
        if confusion is not None:
            self.log_text(confusion_csv(confusion, label_names), f"evaluation/{split}_confusion.csv")
            self.client.log_figure(self.run_id, confusion_figure(confusion, label_names, split),
                                   f"evaluation/{split}_confusion.png")
        return metrics

    # -- models --------------------------------------------------------------------------------
    def log_model(self, config: Any, state: Mapping[str, Any], normalisation: Mapping[str, Any] | None = None,
                  registered_name: str | None = None, name: str = "model") -> tuple[str, str | None]:
        """Log a trained model and register it; returns ``(model_uri, version)``.

        ``config``: its TrainConfig; ``state``: its best-model state (weights, dims, label names,
        speakers: :meth:`~dgnode.training.trainer.Trainer.model_state`); ``normalisation``: the
        training data's. The model is a pyfunc that loads without unpickling
        (:mod:`dgnode.tracking.logged_model`): DGODE's forward takes a conversation batch, not a
        tensor, so neither MLflow's ``pt2`` export nor a plain tensor signature fits it, and
        ``mlflow.pytorch``'s pickle format would run code on load. Requirements are listed
        explicitly; MLflow's inference would re-import the model in a subprocess (seconds).
        """
        import tempfile

        import mlflow
        from mlflow.models import Model

        from dgnode.tracking.logged_model import MODEL_CODE, RUN_ARTIFACT, write_run_dir

        with _fluent_scope(self.tracking_uri, self.experiment_id), \
                tempfile.TemporaryDirectory(prefix="dgnode-model-") as tmp:
            # MLflow names the artifact's directory after the staged one.
            staging = str(Path(tmp) / RUN_ARTIFACT)
            write_run_dir(staging, config, state, _jsonable(normalisation or {"method": "none"}))
            try:
                info = Model.log(
                    artifact_path=None,
                    name=name,
                    flavor=mlflow.pyfunc,
                    run_id=self.run_id,
                    python_model=str(MODEL_CODE),
                    artifacts={RUN_ARTIFACT: staging},
                    pip_requirements=model_requirements(),
                )
                version = self._register(registered_name, info.model_uri, info.model_id) if registered_name else None
            except mlflow.exceptions.MlflowException as error:
                raise TrackingError(f"logging the model of run {self.run_id} failed: {error}") from None
        return info.model_uri, version

    def _register(self, registered_name: str, model_uri: str, model_id: str | None) -> str:
        """A new version of ``registered_name`` (created if new) from the logged model.

        Through the client rather than ``log_model(registered_model_name=...)``: MLflow's fluent
        registration prints "Successfully registered model" / "Created version" to stderr itself,
        and this links the version to its run as well."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(registered_name)
        except MlflowException as error:
            if error.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        created = self.client.create_model_version(registered_name, source=model_uri, run_id=self.run_id,
                                                   model_id=model_id)
        return str(created.version)

    # -- status --------------------------------------------------------------------------------
    def end(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status)


@contextmanager
def _fluent_scope(tracking_uri: str, experiment_id: str) -> Iterator[None]:
    """MLflow's process-wide tracking URI and active experiment set for the block, then put back.

    ``Model.log`` works only through MLflow's fluent state (MLflow 3 files the LoggedModel under
    the *active* experiment, not the run's), and setting it also exports ``MLFLOW_TRACKING_URI``
    and ``MLFLOW_EXPERIMENT_ID`` to every subprocess started later: left set, a later job in the
    same process (or a test session) would log to this server."""
    import mlflow
    from mlflow.tracking import fluent
    from mlflow.tracking._tracking_service import utils

    saved_env = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID")}
    saved_uri, saved_experiment = utils._tracking_uri, fluent._active_experiment_id
    try:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_experiment(experiment_id=experiment_id)
        yield
    finally:
        utils._tracking_uri = saved_uri
        fluent._active_experiment_id = saved_experiment
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def tracked_run(
    tracking_uri: str,
    experiment_id: str,
    run_name: str | None = None,
    parent_run_id: str | None = None,
    tags: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    stop_exceptions: tuple[type[BaseException], ...] = (),
) -> Iterator[TrackedRun]:
    """Create (or, with ``run_id``, reopen) a run and end it whatever happens in the block.

    Terminal state: ``run.status_on_exit`` when the body set it, else FINISHED on normal exit;
    an exception in ``stop_exceptions`` means "stopped on purpose" and ends the run FINISHED
    with ``dgnode.stop_reason`` set (Ray Tune ends a trial its scheduler stopped by raising
    ``SystemExit`` in the trial's thread); any other ``KeyboardInterrupt``/``SystemExit`` gives
    KILLED, any other exception FAILED with the error in ``dgnode.error``. The exception is
    always re-raised.
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    all_tags = {str(k): str(v) for k, v in (tags or {}).items()}
    if parent_run_id:
        all_tags[PARENT_TAG] = parent_run_id
    reopened = run_id is not None
    if run_id is None:
        run_id = client.create_run(experiment_id, run_name=run_name, tags=all_tags).info.run_id
    else:
        client.update_run(run_id, status=RunStatus.RUNNING)
    run = TrackedRun(tracking_uri, run_id, experiment_id)
    if reopened and all_tags:
        run.set_tags(all_tags)
    status = RunStatus.FAILED
    try:
        yield run
        status = run.status_on_exit or RunStatus.FINISHED
    except stop_exceptions as stop:
        status = RunStatus.FINISHED
        _set_tag_quietly(run, STOP_REASON_TAG, f"stopped ({type(stop).__name__})")
        raise
    except (KeyboardInterrupt, SystemExit) as stop:
        status = RunStatus.KILLED
        _set_tag_quietly(run, STOP_REASON_TAG, f"interrupted ({type(stop).__name__})")
        raise
    except BaseException as error:
        status = RunStatus.FAILED
        _set_tag_quietly(run, ERROR_TAG, f"{type(error).__name__}: {error}")
        raise
    finally:
        client.set_terminated(run_id, status)


def child_runs(tracking_uri: str, experiment_id: str, parent_run_id: str, status: str | None = None) -> list[Any]:
    """All runs of ``experiment_id`` whose ``mlflow.parentRunId`` is ``parent_run_id``."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    query = f"tags.`{PARENT_TAG}` = '{parent_run_id}'"
    if status is not None:
        query += f" and attributes.status = '{status}'"
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=query, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def end_dangling_runs(
    tracking_uri: str,
    experiment_id: str,
    parent_run_id: str,
    decide: Callable[[Any], str] | None = None,
) -> dict[str, str]:
    """End every child of ``parent_run_id`` still RUNNING; returns ``{run_id: status set}``.

    ``decide(run)`` picks each run's status (default KILLED): a search knows, from its own
    results, whether a trial whose process died before its ``finally`` ran had completed.
    ``DELETED`` ends the run KILLED and moves it to MLflow's trash (restorable): a run that
    belongs to nothing (a trial its search never saved) must not count as one.
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    ended = {}
    for run in child_runs(tracking_uri, experiment_id, parent_run_id, status=RunStatus.RUNNING):
        status = decide(run) if decide is not None else RunStatus.KILLED
        if status == RunStatus.RUNNING:
            continue
        if status == "DELETED":
            client.set_terminated(run.info.run_id, RunStatus.KILLED)
            client.delete_run(run.info.run_id)
        else:
            client.set_terminated(run.info.run_id, status)
        ended[run.info.run_id] = status
    return ended


def _set_tag_quietly(run: TrackedRun, key: str, value: str) -> None:
    # Already failing or stopping: a second error while tagging must not mask the first.
    try:
        run.client.set_tag(run.run_id, key, value[:MAX_PARAM_LENGTH])
    except Exception:  # noqa: BLE001
        pass


def _param_value(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)
    if len(text) > MAX_PARAM_LENGTH:
        text = text[: MAX_PARAM_LENGTH - 3] + "..."
    return text


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
