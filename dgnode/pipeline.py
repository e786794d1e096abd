"""The main job: raw corpus -> manifest -> ImageBind features -> DGODE search -> best model on test.

With no corpus given it generates a mini-IEMOCAP in the raw format and extracts with the tiny
random-init ImageBind, so the whole chain runs on a laptop in minutes (the numbers it reports
are then only a smoke test: random embeddings of synthetic media carry little emotion). With
``corpus_root`` (``IEMOCAP_ROOT``) and ``checkpoint`` (``IMAGEBIND_CHECKPOINT``) the same job
runs the real thing. Every stage is resumable: the scan is cheap and redone, extraction skips
utterances already in the store, and a search directory can be resumed with ``dgnode tune
--resume``.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

REPO_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@dataclass
class PipelineConfig:
    """Options of ``jobs/pipeline.py`` (each a ``--flag`` there)."""

    workdir: str = "demo_output"
    corpus_root: str | None = None
    checkpoint: str | None = None
    labels: Literal["merc6", "raw6", "four"] = "merc6"
    synth_seed: int = 0
    synth_dialogs: int | None = None
    modalities: list[str] = field(default_factory=lambda: ["text", "audio", "vision"])
    gpu_memory_gb: float = 24.0
    train_config: str = str(REPO_CONFIGS / "dgode_demo.yaml")
    space: str = str(REPO_CONFIGS / "search_space_demo.yaml")
    trials: int = 4
    epochs: int | None = None
    max_concurrent: int = 2
    workers_per_trial: int = 1
    gpus_per_worker: float = 0.0
    tracking_uri: str | None = None
    experiment: str = "dgnode-pipeline"
    address: str | None = None
    overrides: list[str] = field(default_factory=list)

    @classmethod
    def from_environment(cls, demo: bool = False, **values: Any) -> "PipelineConfig":
        """``corpus_root``/``checkpoint`` default to ``IEMOCAP_ROOT``/``IMAGEBIND_CHECKPOINT``;
        ``demo`` ignores both (the embedded default). ``None`` values keep the defaults."""
        if demo:
            values["corpus_root"] = values["checkpoint"] = None
        else:
            values["corpus_root"] = values.get("corpus_root") or os.environ.get("IEMOCAP_ROOT") or None
            values["checkpoint"] = values.get("checkpoint") or os.environ.get("IMAGEBIND_CHECKPOINT") or None
        return cls(**{k: v for k, v in values.items() if v is not None})


@dataclass
class PipelineResult:
    workdir: Path
    corpus_root: Path
    manifest: Path
    store: Path
    search_dir: Path
    tracking_uri: str
    stage_seconds: dict[str, float]
    scan: dict[str, Any]
    extraction: dict[str, Any]
    search: Any  # dgnode.tuning.search.SearchOutcome


def run_pipeline(config: PipelineConfig, progress: bool = True) -> PipelineResult:
    """Run every stage in order on one Ray session; see the module docstring."""
    import ray

    from dgnode.corpus.scan import scan_corpus, write_scan
    from dgnode.corpus.synth import SynthConfig, synthesize_corpus
    from dgnode.embedding.pipeline import ExtractConfig, run_extraction
    from dgnode.errors import InputError
    from dgnode.tracking.server import check_tracking_uri, resolve_tracking_uri
    from dgnode.tuning.search import TuneSettings, run_search

    workdir = Path(config.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    tracking_uri = resolve_tracking_uri(config.tracking_uri, cwd=workdir)
    check_tracking_uri(tracking_uri)  # before any work: a run that cannot be recorded is not started
    timings: dict[str, float] = {}

    @contextlib.contextmanager
    def timed(stage: str):
        _say(f"[{stage}] ...")
        start = time.perf_counter()
        yield
        timings[stage] = time.perf_counter() - start

    if config.corpus_root:
        corpus_root = Path(config.corpus_root)
        if not corpus_root.exists():
            raise InputError("corpus root not found (IEMOCAP_ROOT)", path=str(corpus_root))
        model = "huge"
        if not config.checkpoint:
            raise InputError("a real corpus needs the ImageBind-huge checkpoint: set IMAGEBIND_CHECKPOINT or --checkpoint")
    else:
        corpus_root = workdir / "corpus"
        model = "huge" if config.checkpoint else "tiny"
        with timed("synth corpus"):
            synthesize_corpus(corpus_root, SynthConfig(seed=config.synth_seed, dialogs=config.synth_dialogs), progress=progress)

    with timed("scan"):
        scan = scan_corpus(corpus_root, labels=config.labels, progress=progress)
        paths = write_scan(scan, workdir / "scan")

    started_ray = False
    if not ray.is_initialized():
        # Under `ray job submit` RAY_ADDRESS names the job's cluster; "local" would start another.
        ray.init(address=config.address or os.environ.get("RAY_ADDRESS") or "local", include_dashboard=False, log_to_driver=False)
        started_ray = True
    try:
        store = workdir / f"features-{model}"
        with timed("extract"):
            extraction = run_extraction(
                ExtractConfig(
                    manifest=str(paths["manifest"]),
                    store=str(store),
                    model=model,
                    checkpoint=config.checkpoint,
                    modalities=list(config.modalities),
                    gpu_memory_gb=config.gpu_memory_gb,
                    progress=progress,
                )
            )
        search_dir = workdir / f"search-{time.strftime('%Y%m%d-%H%M%S')}"
        with timed("tune + test"):
            outcome = run_search(
                search_dir,
                store=store,
                space_path=config.space,
                settings=TuneSettings(
                    trials=config.trials,
                    epochs=config.epochs,
                    max_concurrent=config.max_concurrent,
                    workers_per_trial=config.workers_per_trial,
                    gpus_per_worker=config.gpus_per_worker,
                    experiment=config.experiment,
                ),
                config_path=config.train_config,
                overrides=config.overrides,
                tracking_uri=tracking_uri,
                progress=progress,
            )
    finally:
        if started_ray:
            ray.shutdown()
    return PipelineResult(
        workdir=workdir,
        corpus_root=corpus_root,
        manifest=paths["manifest"],
        store=store,
        search_dir=search_dir,
        tracking_uri=tracking_uri,
        stage_seconds=timings,
        scan=scan.summary(),
        extraction=extraction.as_dict(),
        search=outcome,
    )


def summary_table(result: PipelineResult):
    """One rich table of what each stage produced."""
    from rich.table import Table

    table = Table(title="dgnode pipeline", show_lines=False)
    table.add_column("stage")
    table.add_column("result")
    table.add_column("seconds", justify="right")
    scan = result.scan
    extraction = result.extraction
    search = result.search
    seconds = result.stage_seconds
    if "synth corpus" in seconds:
        table.add_row("synth corpus", str(result.corpus_root), f"{seconds['synth corpus']:.1f}")
    table.add_row(
        "scan",
        f"{scan.get('dialogues')} dialogues, {scan.get('utterances')} utterances, "
        f"{scan.get('labelled')} labelled, {sum(scan.get('rejects', {}).values())} skipped or rejected",
        f"{seconds.get('scan', 0):.1f}",
    )
    table.add_row(
        "extract",
        f"{extraction['stored']} stored, {extraction['already_stored']} already there, "
        f"{extraction['failed']} failed ({extraction['utterances_per_second']:.1f} utt/s)",
        f"{seconds.get('extract', 0):.1f}",
    )
    finished = sum(t.status == "TERMINATED" for t in search.trials)
    failed = sum(t.status == "ERROR" for t in search.trials)
    best = "n/a" if search.best_valid_wf1 is None else f"{search.best_valid_wf1:.3f}"
    table.add_row("tune", f"{len(search.trials)} trials ({finished} finished, {failed} failed), best valid wF1 {best}", f"{seconds.get('tune + test', 0):.1f}")
    test = search.test or {}
    if test:
        table.add_row(
            "test (best config)",
            f"weighted F1 {test.get('weighted_f1', float('nan')):.3f}, accuracy {test.get('accuracy', float('nan')):.3f}",
            "",
        )
    if search.model_uri:
        table.add_row("registered model", f"{search.model_uri} (version {search.model_version})", "")
    return table


def mlflow_ui_hint(tracking_uri: str) -> str:
    """How to look at the runs this pipeline recorded."""
    if tracking_uri.startswith("http"):
        return f"Open {tracking_uri} in a browser (the tracking server this run used)."
    return (
        f"Open the MLflow UI:  .venv/bin/mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1 --port 5000\n"
        "then browse http://127.0.0.1:5000 (or start mlflow/server.sh for a long-lived server)."
    )


def _say(message: str) -> None:
    print(message, flush=True)
