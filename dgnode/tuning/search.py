"""A hyperparameter search: Ray Tune + Optuna TPE + ASHA, every trial an MLflow run, best model tested.

Shape of one search (:func:`run_search`)::

    check the tracking URI ─▶ load config, search space, features ─▶ parent MLflow run
      ─▶ Tuner(OptunaSearch(TPE, seeded) under ConcurrencyLimiter, ASHA on valid_wf1 per epoch)
           trials: dgnode.tuning.trainable (1 process, or a TorchTrainer of W workers)
           driver: MLflowTrialCallback (one child run per trial, ended FINISHED / FAILED)
      ─▶ sweep child runs still RUNNING ─▶ best trial's best.pt on the test split, once
      ─▶ "final" child run with test metrics + registered model ─▶ OUT/summary.json

Failures: ``FailureConfig(max_failures=0)``: a trial that hits the NFE cap or diverges is not
retried; Tune records it as ERROR, ``Tuner.fit`` returns normally (it never raises for trial
errors) and the other trials go on. Interruption (Ctrl-C / SIGINT, SIGUSR1): Tune saves the
experiment state and returns early; the search then marks its running trial runs and the parent
KILLED and reports itself interrupted. ``resume=True`` continues it with ``Tuner.restore(path,
trainable, resume_unfinished=True, resume_errored=False, restart_errored=False)``: finished and
failed trials are kept as they are, unfinished ones continue from their last checkpoint (and
their MLflow runs are reopened), and the searcher and scheduler state come back with the
experiment. ``OUT/search.json`` records everything needed to resume (with ``OUT/space.yaml``, a
copy of the search space: a resumed search may run where the original file is not). A tracking server lost
mid-search stops it the same way, then raises :class:`TrackingLostError` (the MLflow writes it
missed are made on resume); a resume first refuses a directory others can write
(:mod:`dgnode.tuning.trust`): Tune's restore unpickles what is in it.

``OUT`` is a local directory or an ``s3://`` prefix (:func:`dgnode.storage.resolve`): the record,
ledger, summary and space copy are written there whole and atomically, and Tune keeps its
experiment and every trial's checkpoints under it (``storage_path`` + ``storage_filesystem``), so
trials on any node checkpoint there and a search interrupted on one driver resumes from another.

MLflow is written by the driver only (:mod:`dgnode.tuning.mlflow_callback`), never by trials.
ASHA's default grace period is 4 epochs: ``bench/bench_asha.py`` measured that a first rung
after 1 epoch stopped the configurations that end best (slow starters) on synthetic IEMOCAP.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dgnode.errors import DgnodeError, InputError
from dgnode.ray_session import ray_session
from dgnode.storage import Location, resolve
from dgnode.tracking.server import bounded_http_retries
from dgnode.tuning.callbacks import SessionStop, TrialLedger, read_ledger
from dgnode.tuning.mlflow_callback import MLflowTrialCallback, TrackingLostError
from dgnode.tuning.retention import prune_finished
from dgnode.tuning.settings import TuneSettings
from dgnode.tuning.trust import refuse_untrusted
from dgnode.tuning.capacity import CapacityLost, CapacityWatch, check_trial_fits
from dgnode.tuning.tuner import build_tuner
from dgnode.tuning.results import SELECTION_METRIC, TrialSummary, plain, sweep_runs, trial_finished, trial_summaries, tune_trials

__all__ = ["SEARCH_RECORD", "SUMMARY_FILE", "SearchOutcome", "TuneSettings", "run_search"]

_log = logging.getLogger(__name__)

SEARCH_RECORD = "search.json"
SUMMARY_FILE = "summary.json"
LEDGER_FILE = "trials.json"
SPACE_COPY = "space.yaml"


@dataclass
class SearchOutcome:
    """What a search returns (and writes to ``OUT/summary.json``)."""

    out_dir: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    interrupted: bool
    trials: list[TrialSummary] = field(default_factory=list)
    best_trial_id: str | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_valid_wf1: float | None = None
    test: dict[str, Any] = field(default_factory=dict)
    final_run_id: str | None = None
    model_uri: str | None = None
    model_version: str | None = None
    seconds: float = 0.0
    already_complete: bool = False  # a resume of a finished search: nothing was run
    model: str | None = None  # the registered model name the search trains (e.g. dgode)


def run_search(
    out_dir: "str | Path | Location",
    base_config: Any = None,
    space_path: str | Path | None = None,
    settings: TuneSettings | None = None,
    tracking_uri: str | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> SearchOutcome:
    """Run (or, with ``resume``, continue) the search recorded in ``out_dir``; see the module docstring.

    ``base_config``: the :class:`~dgnode.training.config.TrainConfig` the search space varies; its
    ``data.store`` is the feature store. A resumed search takes both from its record.

    ``stop_after``: end this session gracefully once that many trials have finished in it
    (:class:`SessionStop`); the outcome is then ``interrupted`` and the search resumable.
    """
    if stop_after is not None and stop_after < 1:
        raise DgnodeError(f"stop_after must be >= 1, got {stop_after}")
    from dgnode.tracking.server import check_tracking_uri, resolve_tracking_uri

    started = time.perf_counter()
    out = resolve(out_dir)
    out.check_bucket()  # an unreachable endpoint, refused credentials, a missing bucket: now, not mid-search
    record_path = out / SEARCH_RECORD
    if resume:
        refuse_untrusted(out)  # Tune's restore unpickles what is in there
        if not record_path.exists():
            raise InputError(f"no search to resume: {SEARCH_RECORD} is missing (run without --resume first)", path=out.uri)
        record = _read_record(record_path)
        if record.get("completed"):
            return _completed_outcome(out)
        base_config, settings = record["base_config"], record["settings"]
        space_path = out / SPACE_COPY if (out / SPACE_COPY).exists() else record["space"]  # older records: no copy
        uri = record["tracking_uri"]
        if tracking_uri and resolve_tracking_uri(tracking_uri) != uri:
            # The parent run and the trial runs live there; the restored callbacks write there too.
            raise InputError(f"this search is tracked at {uri}; resume it there (drop --tracking-uri or pass that URI)",
                             path=record_path.uri)
    else:
        if record_path.exists():
            raise InputError(f"{SEARCH_RECORD} exists: this directory holds a search; pass --resume to continue it, or another --out", path=out.uri)
        if base_config is None or not base_config.data.store or space_path is None:
            raise InputError("a new search needs a feature store (--data.store) and a search space (--space)")
        settings = settings or TuneSettings()
        uri = resolve_tracking_uri(tracking_uri)
        record = None

    # Fail before any data loading, Ray start-up or training when runs cannot be recorded.
    check_tracking_uri(uri)

    base_config, space, data = _prepare(base_config, space_path, settings)
    # Ray Train releases a stopped multi-worker trial's resources through the dashboard's state API.
    with ray_session(dashboard=True):
        return _search(out, record, base_config, space, space_path, data, settings, uri, resume, progress, stop_after,
                       started)


def _search(out, record, base_config, space, space_path, data, settings, uri, resume, progress, stop_after, started):
    import ray

    from dgnode.features.store import FeatureStore
    from dgnode.options import to_dict
    from dgnode.tracking.runs import ensure_experiment, provenance_tags

    store = base_config.data.store
    epochs = settings.epochs or base_config.train.epochs
    from dgnode.cluster.config import launchable_workers

    launchable = launchable_workers()
    waiting = check_trial_fits(ray.cluster_resources(), settings, launchable)
    if waiting:
        _log.warning(waiting)

    tags = provenance_tags(FeatureStore.open(store).fingerprint(), store)
    experiment_id = ensure_experiment(uri, settings.experiment)
    if record is None:
        out.mkdir()
        space_text = resolve(space_path).read_text()
        (out / SPACE_COPY).write_text(space_text)
        parent_run_id = _create_parent_run(uri, experiment_id, settings, space, tags, space_text, resolve(space_path).name)
        record = {
            "base_config": to_dict(base_config),
            "space": resolve(space_path).uri,
            "settings": dataclasses.asdict(settings),
            "tracking_uri": uri,
            "experiment_id": experiment_id,
            "parent_run_id": parent_run_id,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (out / SEARCH_RECORD).write_json(record)
    else:
        parent_run_id = record["parent_run_id"]
        experiment_id = record["experiment_id"]
        from mlflow import MlflowClient

        MlflowClient(uri).update_run(parent_run_id, status="RUNNING")

    outcome = SearchOutcome(out.uri, uri, experiment_id, parent_run_id, interrupted=False, model=base_config.model.name)
    SessionStop.limit = stop_after
    TrialLedger.path = (out / LEDGER_FILE).uri
    MLflowTrialCallback.lost = None
    CapacityWatch.settings, CapacityWatch.launchable, CapacityWatch.stalled = settings, launchable, None
    try:
        with bounded_http_retries():  # a lost server stops the search in seconds, not minutes
            results = build_tuner(out, base_config, space, data, settings, epochs, uri, experiment_id, parent_run_id,
                                  tags, resume, progress).fit()
        if MLflowTrialCallback.lost is not None:
            raise TrackingLostError(uri, MLflowTrialCallback.lost, out)
        ledger = read_ledger(out / LEDGER_FILE)
        outcome.trials = trial_summaries(results, ledger)
        finished = sum(trial_finished(t, ledger) for t in tune_trials(results))
        outcome.interrupted = finished < settings.trials
        sweep_runs(uri, experiment_id, parent_run_id, results, ledger)
        if CapacityWatch.stalled is not None:
            raise CapacityLost(f"no trial can start any more: {CapacityWatch.stalled}; the search is saved: resume "
                               f"it with dgnode tune --resume --out {out.uri} once the cluster has the nodes")
        if not outcome.interrupted:
            _evaluate_best(outcome, results, base_config, space, data, settings, uri, experiment_id, parent_run_id, tags)
            if out.is_remote:
                prune_finished(results)  # each trial's latest checkpoint stays (dgnode.tuning.retention)
            (out / SEARCH_RECORD).write_json({**_plain_record(record), "completed": True,
                                              "final_run_id": outcome.final_run_id})
    except BaseException as error:
        if not isinstance(error, TrackingLostError):  # else nothing reaches the server: resume as it is
            resumable = isinstance(error, (KeyboardInterrupt, CapacityLost))
            _end_parent(uri, parent_run_id, "KILLED" if resumable else "FAILED", error)
        raise
    finally:
        SessionStop.limit = None
        TrialLedger.path = None
        CapacityWatch.settings = None
    outcome.seconds = time.perf_counter() - started
    _end_parent(uri, parent_run_id, "KILLED" if outcome.interrupted else "FINISHED")
    (out / SUMMARY_FILE).write_json(dataclasses.asdict(outcome))
    return outcome


def _completed_outcome(out: Location) -> SearchOutcome:
    """The outcome a finished search recorded: resuming it changes nothing (no trial, no test,
    no registration, no MLflow status flips)."""
    try:
        saved = (out / SUMMARY_FILE).read_json()
        saved["trials"] = [TrialSummary(**t) for t in saved.get("trials", [])]
        return SearchOutcome(**{**saved, "already_complete": True})
    except (OSError, ValueError, TypeError) as error:
        raise InputError(f"the search is recorded as complete but its summary is unreadable ({error})",
                         path=(out / SUMMARY_FILE).uri) from None


def _plain_record(record: dict[str, Any]) -> dict[str, Any]:
    from dgnode.options import to_dict

    return {k: to_dict(v) if dataclasses.is_dataclass(v) else v for k, v in record.items()}


# -- preparation ---------------------------------------------------------------------------------
def _prepare(base_config: Any, space_path: Any, settings: "TuneSettings"):
    from dgnode.features.dataset import load_conversations
    from dgnode.options import replace_dotted
    from dgnode.storage import resolve
    from dgnode.tuning.space import load_search_space

    # What every trial and worker reads, on any node: an absolute path or an s3:// URI.
    updates: dict[str, Any] = {"data.store": resolve(base_config.data.store).uri}
    if settings.epochs is not None:
        updates["train.epochs"] = settings.epochs
    base_config = replace_dotted(base_config, updates)
    space = load_search_space(space_path, base_config)
    searched_data = sorted(k for k in space.searched if k.startswith("data."))
    if searched_data:
        raise InputError(f"searching data keys {searched_data} is not supported: every trial shares one loaded data set; "
                         "fix them in the config or as plain values", path=str(space_path))
    # Fixed values apply to every trial; data.* ones decide what is loaded.
    base_config = replace_dotted(base_config, space.fixed)
    if settings.gpus_per_worker > 0:
        base_config = replace_dotted(base_config, {"train.device": "cuda"})
    data = load_conversations(base_config.data.store, base_config.data.modalities, base_config.data.normalise)
    return base_config, space, data


def _read_record(path: Location) -> dict[str, Any]:
    """The search record, its config and settings validated; a damaged record is one clear error."""
    from dgnode.options import parse
    from dgnode.training.config import TrainConfig

    try:
        record = path.read_json()
        record["base_config"] = parse(TrainConfig, record["base_config"], source=path.uri)
        record["settings"] = parse(TuneSettings, record["settings"], source=path.uri)
        return record
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(f"unreadable search record ({type(error).__name__}: {error}); it is written by the first "
                         "`dgnode tune` of this directory", path=path.uri) from None


def _create_parent_run(uri, experiment_id, settings, space, tags, space_text, space_name) -> str:
    from mlflow import MlflowClient

    from dgnode.tracking.runs import TrackedRun
    from dgnode.tuning.mlflow_callback import KIND_TAG

    client = MlflowClient(uri)
    run = client.create_run(experiment_id, run_name=f"search-{time.strftime('%Y%m%d-%H%M%S')}",
                            tags={**tags, KIND_TAG: "search"})
    tracked = TrackedRun(uri, run.info.run_id, experiment_id)
    tracked.log_params({f"tune.{k}": v for k, v in dataclasses.asdict(settings).items()})
    tracked.log_params({f"space.{k}": d.describe() for k, d in space.searched.items()})
    tracked.log_params({f"fixed.{k}": v for k, v in space.fixed.items()})
    tracked.log_text(space_text, f"search_space/{space_name}")
    return run.info.run_id


def _evaluate_best(outcome, results, base_config, space, data, settings, uri, experiment_id, parent_run_id, tags) -> None:
    import torch

    from dgnode.tracking.runs import TrackedRun, tracked_run
    from dgnode.training.best import evaluate_and_register
    from dgnode.training.rundir import RunDir
    from dgnode.tuning.mlflow_callback import KIND_TAG, TRIAL_TAG

    candidates = [r for r in results if r.error is None and isinstance(r.metrics.get(SELECTION_METRIC), (int, float))]
    if not candidates:
        raise DgnodeError("no trial finished with a valid weighted F1: nothing to evaluate on the test split "
                          f"({results.num_errors} of {len(results)} trials failed; see `dgnode compare`)")
    best = max(candidates, key=lambda r: r.metrics[SELECTION_METRIC])
    params = {k: plain(v) for k, v in best.config.items()}
    outcome.best_trial_id = str(best.metrics.get("trial_id"))
    outcome.best_params = params
    outcome.best_valid_wf1 = float(best.metrics[SELECTION_METRIC])
    earlier = _earlier_final_run(outcome, uri, experiment_id, parent_run_id, settings)
    if outcome.final_run_id is not None:
        return  # a session killed after testing and registering: do neither twice
    config = space.config_for(base_config, params)
    device = "cuda" if settings.gpus_per_worker > 0 and torch.cuda.is_available() else "cpu"
    state = RunDir(_best_checkpoint(best)).load_model(device)
    trial_id = best.metrics.get("trial_id")
    # A final step killed midway left its run (marked FAILED by the resume, or FINISHED but not
    # registered): it is reopened, so the search keeps one "best-on-test" run.
    with tracked_run(uri, experiment_id, run_name="best-on-test", parent_run_id=parent_run_id,
                     tags={**tags, KIND_TAG: "final", TRIAL_TAG: str(trial_id)}, run_id=earlier) as run:
        run.log_config(config)
        run.log_metrics({"best_valid_wf1": float(best.metrics[SELECTION_METRIC])})
        tested = evaluate_and_register(config, data, state, run, settings.registered_model or settings.experiment,
                                       device=device)
    parent = TrackedRun(uri, parent_run_id, experiment_id)
    summary = {"best_valid_wf1": float(best.metrics[SELECTION_METRIC])}
    if tested.test:
        summary.update({"test_wf1": tested.test["weighted_f1"], "test_acc": tested.test["accuracy"]})
    parent.log_metrics(summary)
    parent.set_tags({"dgnode.best_trial_id": str(trial_id), "dgnode.final_run_id": run.run_id})
    outcome.test = tested.test
    outcome.final_run_id = run.run_id
    outcome.model_uri, outcome.model_version = tested.model_uri, tested.model_version


def _earlier_final_run(outcome: SearchOutcome, uri: str, experiment_id: str, parent_run_id: str,
                       settings: Any) -> str | None:
    """The "best-on-test" run an earlier session of this search made, if any.

    Registered: ``outcome`` is filled from it (``final_run_id`` set) and there is nothing left to
    do. Otherwise (killed before the test ended, or between the test and the registration) its id
    is returned for the final step to reopen."""
    from mlflow import MlflowClient

    from dgnode.tracking.runs import child_runs
    from dgnode.tuning.mlflow_callback import KIND_TAG

    finals = sorted((r for r in child_runs(uri, experiment_id, parent_run_id) if r.data.tags.get(KIND_TAG) == "final"),
                    key=lambda r: r.info.start_time or 0)
    if not finals:
        return None
    name = settings.registered_model or settings.experiment
    client = MlflowClient(uri)
    for run in finals:
        versions = client.search_model_versions(f"name='{name}' and run_id='{run.info.run_id}'")
        if versions:  # registered: the test before it is logged, whatever ended the run
            if run.info.status != "FINISHED":  # killed after registering, before the run ended
                client.set_terminated(run.info.run_id, "FINISHED")
            metrics = run.data.metrics
            outcome.test = {"weighted_f1": metrics.get("test_wf1"), "accuracy": metrics.get("test_acc")}
            outcome.final_run_id = run.info.run_id
            outcome.model_version = str(versions[0].version)
            outcome.model_uri = f"models:/{name}/{outcome.model_version}"
            return run.info.run_id
    return finals[0].info.run_id


def _best_checkpoint(result) -> str:
    """Where the best trial's best model is (a path or an ``s3://`` URI): its Tune checkpoint
    (one-process trials) or the Ray Train checkpoint a distributed trial reports with its last epoch."""
    from dgnode.training.checkpointing import checkpoint_uri

    if result.checkpoint is not None:
        return checkpoint_uri(result.checkpoint)
    path = result.metrics.get("checkpoint_path")
    if path:
        return str(path)
    raise DgnodeError(f"trial {result.metrics.get('trial_id')} reported no checkpoint: cannot evaluate its model")


def _end_parent(uri: str, parent_run_id: str, status: str, error: BaseException | None = None) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    try:
        if error is not None and status == "FAILED":
            client.set_tag(parent_run_id, "dgnode.error", f"{type(error).__name__}: {error}"[:5000])
        client.set_terminated(parent_run_id, status)
    except Exception:  # noqa: BLE001 - never mask the search's own error
        if error is None:
            raise
