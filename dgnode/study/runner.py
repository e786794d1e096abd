"""Train the runs of a study, one after another or as Ray tasks, and collect their test scores.

Each run is a plain :func:`dgnode.training.fit` into ``OUT/runs/{model}-{mode}-seed{seed}``; a
run whose report holds the same config and a test evaluation is reused, so an
interrupted study resumes where it stopped. A run that fails is recorded with its error and
the others go on; the report lists the failures.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from dgnode.options import to_dict
from dgnode.study.spec import StudyRun, StudySpec, build_runs
from dgnode.training.rundir import RunDir

__all__ = ["RunRecord", "StudyResult", "choose_runner", "finished_report", "record_from_report", "run_study", "train_run"]


@dataclass
class RunRecord:
    """The outcome of one run: test scores (fractions) or the error that stopped it."""

    model: str
    mode: str
    seed: int
    run_dir: str
    status: str  # "trained", "reused" or "failed"
    weighted_f1: float | None = None
    accuracy: float | None = None
    per_class_f1: dict[str, float] = field(default_factory=dict)
    best_epoch: int | None = None
    epochs_run: int | None = None
    best_valid_weighted_f1: float | None = None
    train_time_s: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"


@dataclass
class StudyResult:
    spec: StudySpec
    runs: list[StudyRun]
    records: list[RunRecord]
    label_names: list[str]
    runner: str
    wall_time_s: float

    @property
    def failures(self) -> list[RunRecord]:
        return [r for r in self.records if not r.ok]


def record_from_report(run: StudyRun, report: dict[str, Any], status: str) -> RunRecord:
    test = report.get("test") or {}
    return RunRecord(
        model=run.model,
        mode=run.mode,
        seed=run.seed,
        run_dir=str(run.run_dir),
        status=status,
        weighted_f1=test.get("weighted_f1"),
        accuracy=test.get("accuracy"),
        per_class_f1=dict(test.get("per_class_f1", {})),
        best_epoch=report.get("best_epoch"),
        epochs_run=report.get("epochs_run"),
        best_valid_weighted_f1=report.get("best_valid_weighted_f1"),
        train_time_s=report.get("train_time_s"),
    )


def finished_report(run: StudyRun) -> dict[str, Any] | None:
    """The run's report if it finished with this very config and a test evaluation."""
    report = RunDir(run.run_dir).read_report()
    if not isinstance(report, dict):
        return None
    # Compare through JSON so tuples/lists and int/float spellings do not matter.
    same = json.loads(json.dumps(to_dict(run.config))) == report.get("config")
    return report if same and report.get("test") else None


def train_run(run: StudyRun, data: Any, threads: int | None = None) -> RunRecord:
    """Train one run with :func:`dgnode.training.fit`; any exception becomes a failed record."""
    import torch

    from dgnode.training.loop import fit

    if threads is not None:
        torch.set_num_threads(threads)
    try:
        result = fit(run.config, data, run.run_dir, progress=False)
        return record_from_report(run, result.report, "trained")
    except Exception as error:  # one run's failure must not drop the others
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        return RunRecord(run.model, run.mode, run.seed, str(run.run_dir), "failed", error=detail)


def _data_key(config: Any) -> tuple[tuple[str, ...] | None, str]:
    modalities = tuple(config.data.modalities) if config.data.modalities else None
    return modalities, config.data.normalise


def _load_data(spec: StudySpec, runs: Sequence[StudyRun]) -> dict[tuple, Any]:
    from dgnode.features.dataset import load_conversations

    datasets: dict[tuple, Any] = {}
    for run in runs:
        key = _data_key(run.config)
        if key not in datasets:
            modalities, normalise = key
            datasets[key] = load_conversations(spec.store, list(modalities) if modalities else None, normalise)
    return datasets


def choose_runner(requested: str) -> str:
    """``auto`` -> ``ray`` when Ray is initialised or ``RAY_ADDRESS`` is set, else ``local``."""
    if requested != "auto":
        return requested
    try:
        import ray
    except ImportError:
        return "local"
    return "ray" if ray.is_initialized() or os.environ.get("RAY_ADDRESS") else "local"


def run_study(
    spec: StudySpec,
    progress: bool = True,
    on_record: Callable[[RunRecord], None] | None = None,
) -> StudyResult:
    """Train (or reuse) every run of ``spec`` and return the records in table order."""
    from tqdm import tqdm

    from dgnode.storage import resolve

    started = time.perf_counter()
    resolve(spec.out).mkdir()
    runs = build_runs(spec)
    records: dict[tuple, RunRecord] = {}
    pending: list[StudyRun] = []
    for run in runs:
        report = finished_report(run) if spec.reuse else None
        if report is not None:
            records[run.key] = record_from_report(run, report, "reused")
        else:
            pending.append(run)
    datasets = _load_data(spec, runs)
    label_names = list(next(iter(datasets.values())).label_names)
    runner = choose_runner(spec.runner)
    bar = tqdm(total=len(runs), initial=len(records), desc="study", unit="run", disable=not progress)

    def collect(record: RunRecord) -> None:
        records[(record.model, record.mode, record.seed)] = record
        bar.update(1)
        bar.set_postfix_str(f"{record.model}/{record.mode}/seed{record.seed}: {record.status}")
        if on_record is not None:
            on_record(record)

    try:
        if pending and runner == "ray":
            _run_with_ray(pending, datasets, spec.cpus_per_run, collect)
        else:
            for run in pending:
                collect(train_run(run, datasets[_data_key(run.config)]))
    finally:
        bar.close()
    return StudyResult(
        spec=spec,
        runs=runs,
        records=[records[run.key] for run in runs],
        label_names=label_names,
        runner=runner if pending else "none (all runs reused)",
        wall_time_s=time.perf_counter() - started,
    )


def _run_with_ray(
    runs: Sequence[StudyRun], datasets: dict[tuple, Any], cpus_per_run: int, collect: Callable[[RunRecord], None]
) -> None:
    """Each run as a Ray task (``cpus_per_run`` CPUs, as many torch threads); the data go to
    the object store once per distinct (modalities, normalisation)."""
    import ray

    from dgnode.ray_session import ray_session

    with ray_session():
        remote = ray.remote(num_cpus=cpus_per_run, max_retries=0)(train_run)
        references = {key: ray.put(data) for key, data in datasets.items()}
        futures = {remote.remote(run, references[_data_key(run.config)], cpus_per_run): run for run in runs}
        waiting = list(futures)
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            run = futures[done[0]]
            try:
                record = ray.get(done[0])
            except Exception as error:  # the task died (worker crash, OOM): record it, go on
                message = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
                record = RunRecord(run.model, run.mode, run.seed, str(run.run_dir), "failed", error=message)
            collect(record)
