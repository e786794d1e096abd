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

from dgnode.tuning.settings import TuneSettings

__all__ = ["PipelineConfig", "PipelineResult", "mlflow_ui_hint", "run_pipeline", "summary_table"]

REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _demo_search() -> TuneSettings:
    # Four short trials fit the demo's two minutes on two cores; a real run sets --tune.trials.
    return TuneSettings(trials=4, experiment="dgnode-pipeline")


@dataclass
class PipelineConfig:
    """The main job: raw corpus, manifest, ImageBind features, a DGODE search, the best model on test.

    Attributes:
        workdir: where every stage writes (corpus, scan, features, searches, mlflow.db)
        corpus_root: raw IEMOCAP tree (default: $IEMOCAP_ROOT, else a generated mini corpus)
        checkpoint: imagebind_huge.pth (default: $IMAGEBIND_CHECKPOINT; without it the tiny random-init model)
        labels: label scheme of the scan
        synth_seed: seed of the generated corpus
        synth_dialogs: size of the generated corpus (null: its default)
        modalities: modalities to extract and train on
        gpu_memory_gb: GPU memory budget that sets the extraction batch sizes
        train_config: the training config the search varies (YAML)
        train_overrides: dotted training-config keys applied on top of train_config, e.g. {train.batch_size: 8}
        space: the search space (YAML)
        tune: the search's settings (trials, epochs, concurrency, workers, experiment, ...)
        tracking_uri: MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else WORKDIR/mlflow.db)
        address: Ray address (default: a local Ray, or the job's cluster under `ray job submit`)
    """

    workdir: str = "demo_output"
    corpus_root: str | None = None
    checkpoint: str | None = None
    labels: Literal["merc6", "raw6", "four"] = "merc6"
    synth_seed: int = 0
    synth_dialogs: int | None = None
    modalities: list[str] = field(default_factory=lambda: ["text", "audio", "vision"])
    gpu_memory_gb: float = 24.0
    train_config: str = str(REPO_CONFIGS / "dgode_demo.yaml")
    train_overrides: dict[str, Any] = field(default_factory=dict)
    space: str = str(REPO_CONFIGS / "search_space_demo.yaml")
    tune: TuneSettings = field(default_factory=_demo_search)
    tracking_uri: str | None = None
    address: str | None = None

    def with_environment(self, demo: bool = False) -> "PipelineConfig":
        """``corpus_root``/``checkpoint`` default to ``IEMOCAP_ROOT``/``IMAGEBIND_CHECKPOINT``;
        ``demo`` ignores both (the embedded default)."""
        import dataclasses

        if demo:
            return dataclasses.replace(self, corpus_root=None, checkpoint=None)
        return dataclasses.replace(self, corpus_root=self.corpus_root or os.environ.get("IEMOCAP_ROOT") or None,
                                   checkpoint=self.checkpoint or os.environ.get("IMAGEBIND_CHECKPOINT") or None)


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
    from dgnode.corpus.scan import scan_corpus, write_scan
    from dgnode.corpus.synth import SynthConfig, synthesize_corpus
    from dgnode.embedding.config import ExtractConfig
    from dgnode.embedding.pipeline import run_extraction
    from dgnode.errors import InputError
    from dgnode.options import replace_dotted
    from dgnode.ray_session import ray_session
    from dgnode.tracking.server import check_tracking_uri, resolve_tracking_uri
    from dgnode.training.config import load_train_config
    from dgnode.tuning.search import run_search

    workdir = Path(config.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    tracking_uri = resolve_tracking_uri(config.tracking_uri, cwd=workdir)
    check_tracking_uri(tracking_uri)  # before any work: a run that cannot be recorded is not started
    train_config = load_train_config(config.train_config, config.train_overrides)  # bad keys fail now, not after extraction
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

    # Under `ray job submit` RAY_ADDRESS names the job's cluster; a local Ray starts otherwise.
    with ray_session(config.address):
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
            outcome = run_search(search_dir, replace_dotted(train_config, {"data.store": str(store)}), config.space,
                                 config.tune, tracking_uri=tracking_uri, progress=progress)
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
