"""The main job: raw corpus -> manifest -> ImageBind features -> DGODE search -> best model on
test, beside a context-free MLP and the majority class.

With no corpus given it generates a mini-IEMOCAP in the raw format whose media carry weak, noisy
emotion cues (:mod:`dgnode.corpus.synth_cues`) and extracts with the tiny random-init ImageBind
(the same code as huge), so the whole chain runs on a laptop in about a minute and its final
table shows that it learns: DGODE above the MLP (what context adds) above the majority class
(what learning nothing scores). With ``corpus_root`` (``IEMOCAP_ROOT``) and ``checkpoint``
(``IMAGEBIND_CHECKPOINT``) the same job runs the real thing. Every stage is resumable: the scan
is cheap and redone, extraction skips utterances already in the store, and a search directory
can be resumed with ``dgnode tune --resume``.

``workdir`` is a local directory or an ``s3://`` prefix (:func:`dgnode.storage.resolve`): on a
cluster every stage's output (scan, store, search, baseline run, plots; a generated corpus is
uploaded there first) is then an object every node reads, and MLflow needs a tracking server
(there is no local directory for its database).

Stages print one progress bar each (:func:`dgnode.reporting.progress.progress_bar`: a bar in a
terminal, a few plain lines in a log) and a line when they end; the libraries' own chatter is
switched off at its source first (:func:`dgnode.reporting.quiet.quiet_libraries`). The final
report is :func:`dgnode.pipeline.summary.summary_table`.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dgnode.corpus.synth_plan import SynthConfig
from dgnode.tuning.settings import TuneSettings

__all__ = ["PipelineConfig", "PipelineResult", "run_pipeline"]

REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _demo_search() -> TuneSettings:
    # Four short trials fit the demo's two minutes on two cores; a real run sets --tune.trials.
    # One at a time: as fast on two cores, and TPE then proposes the same trials every run.
    return TuneSettings(trials=4, max_concurrent=1, experiment="dgnode-pipeline")


def _demo_corpus() -> SynthConfig:
    # 30 dialogues (~300 utterances, test split ~60): with 20, which model wins on the test split
    # was a coin toss between corpus seeds; 30 extract in about 40 s on two idle cores.
    return SynthConfig(dialogs=DEMO_DIALOGUES)


DEMO_DIALOGUES = 30


@dataclass
class PipelineConfig:
    """The main job: raw corpus, manifest, ImageBind features, a DGODE search, the best model on test.

    Attributes:
        workdir: where every stage writes (corpus, scan, features, searches, mlflow.db): a directory, or s3://bucket/prefix on a cluster (then MLflow needs a tracking server)
        corpus_root: raw IEMOCAP tree (default: $IEMOCAP_ROOT, else a generated mini corpus)
        checkpoint: imagebind_huge.pth (default: $IMAGEBIND_CHECKPOINT; without it the tiny random-init model)
        labels: label scheme of the scan
        synth: the generated corpus when there is no corpus_root (seed, dialogs, cues, ...)
        modalities: modalities to extract and train on
        gpu_memory_gb: GPU memory budget that sets the extraction batch sizes
        train_config: the training config the search varies (YAML)
        train_overrides: dotted training-config keys applied on top of train_config, e.g. {train.batch_size: 8}
        space: the search space (YAML)
        baseline_config: the context-free MLP's training config (YAML), trained once (null: no baselines)
        tune: the search's settings (trials, epochs, concurrency, workers, experiment, ...)
        tracking_uri: MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else WORKDIR/mlflow.db)
        address: Ray address (default: a local Ray, or the job's cluster under `ray job submit`)
    """

    workdir: str = "demo_output"
    corpus_root: str | None = None
    checkpoint: str | None = None
    labels: Literal["merc6", "raw6", "four"] = "merc6"
    synth: SynthConfig = field(default_factory=_demo_corpus)
    modalities: list[str] = field(default_factory=lambda: ["text", "audio", "vision"])
    gpu_memory_gb: float = 24.0
    train_config: str = str(REPO_CONFIGS / "dgode_demo.yaml")
    train_overrides: dict[str, Any] = field(default_factory=dict)
    space: str = str(REPO_CONFIGS / "search_space_demo.yaml")
    baseline_config: str | None = str(REPO_CONFIGS / "baseline_mlp_demo.yaml")
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
    """Where each stage wrote (absolute local paths or ``s3://`` URIs) and what it found."""

    workdir: str
    corpus_root: str
    manifest: str
    store: str
    search_dir: str
    tracking_uri: str
    stage_seconds: dict[str, float]
    scan: dict[str, Any]
    extraction: dict[str, Any]
    search: Any  # dgnode.tuning.search.SearchOutcome
    label_names: list[str] = field(default_factory=list)
    baselines: Any = None  # dgnode.pipeline.baselines.Baselines, or None without baseline_config
    plots: dict[str, Any] = field(default_factory=dict)  # figure name -> its Location
    synth: SynthConfig | None = None  # the generated corpus's settings (None: a real corpus)


def run_pipeline(config: PipelineConfig, progress: bool = True) -> PipelineResult:
    """Run every stage in order on one Ray session; see the module docstring."""
    from dgnode.reporting.quiet import quiet_libraries

    # Before Ray, Tune, Ray Data, Optuna or MLflow are imported.
    quiet_libraries(local_ray=not (config.address or os.environ.get("RAY_ADDRESS")))

    from dgnode.corpus.scan import scan_corpus, write_scan
    from dgnode.embedding.config import ExtractConfig
    from dgnode.embedding.pipeline import run_extraction
    from dgnode.errors import InputError
    from dgnode.options import replace_dotted
    from dgnode.ray_session import ray_session
    from dgnode.reporting.progress import progress_bar
    from dgnode.storage import resolve
    from dgnode.tracking.server import check_tracking_uri, resolve_tracking_uri
    from dgnode.training.config import load_train_config
    from dgnode.tuning.search import run_search

    workdir = resolve(config.workdir)
    workdir.check_bucket()  # an unreachable endpoint, refused credentials, a missing bucket: now
    workdir.mkdir()
    if workdir.is_remote and not (config.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")):
        raise InputError("an s3:// workdir has no local directory for MLflow's database: pass --tracking_uri "
                         "http://HOST:PORT (a tracking server, mlflow/server.sh) or set MLFLOW_TRACKING_URI",
                         path=workdir.uri)
    tracking_uri = resolve_tracking_uri(config.tracking_uri, cwd=None if workdir.is_remote else workdir.path)
    check_tracking_uri(tracking_uri)  # before any work: a run that cannot be recorded is not started
    modalities = list(config.modalities)
    # Bad keys fail now, not after extraction.
    train_config = load_train_config(config.train_config, {"data.modalities": modalities, **config.train_overrides})
    if config.baseline_config:
        load_train_config(config.baseline_config)
    timings: dict[str, float] = {}

    @contextlib.contextmanager
    def timed(stage: str):
        start = time.perf_counter()
        yield
        timings[stage] = time.perf_counter() - start
        _say(f"{stage:<13} done in {timings[stage]:5.1f} s")

    if config.corpus_root:
        corpus_root = resolve(config.corpus_root)
        if not corpus_root.exists():
            raise InputError("corpus root not found (IEMOCAP_ROOT)", path=corpus_root.uri)
        model = "huge"
        if not config.checkpoint:
            raise InputError("a real corpus needs the ImageBind-huge checkpoint: set IMAGEBIND_CHECKPOINT or --checkpoint")
    else:
        corpus_root = workdir / "corpus"
        model = "huge" if config.checkpoint else "tiny"
        with timed("synth corpus"):
            _synthesize(corpus_root, config.synth, progress)

    with timed("scan"):
        scan = scan_corpus(_stage_location(corpus_root), labels=config.labels, progress=False)  # a fraction of a second
        paths = write_scan(scan, _stage_location(workdir / "scan"))

    # Under `ray job submit` RAY_ADDRESS names the job's cluster; a local Ray starts otherwise.
    with ray_session(config.address):
        store = (workdir / f"features-{model}").uri
        with timed("extract"):
            # The bar is drawn here, from the batches as they are written (the stage's own is off).
            bar = progress_bar(total=len(scan.manifest), desc="extract", unit="utt", enabled=progress)
            try:
                extraction = run_extraction(
                    ExtractConfig(manifest=str(paths["manifest"]), store=str(store), model=model,
                                  checkpoint=config.checkpoint, modalities=modalities,
                                  gpu_memory_gb=config.gpu_memory_gb, progress=False),
                    on_batch=lambda report: bar.update(len(report.utt_ids)),
                )
            finally:
                bar.close()
        search_dir = workdir / f"search-{time.strftime('%Y%m%d-%H%M%S')}"
        with timed("tune + test"):
            outcome = run_search(search_dir, replace_dotted(train_config, {"data.store": str(store)}), config.space,
                                 config.tune, tracking_uri=tracking_uri, progress=progress)
    baselines = None
    if config.baseline_config:
        from dgnode.pipeline.baselines import train_baselines

        with timed("baselines"):
            tracking = {"tracking_uri": tracking_uri, "experiment_id": outcome.experiment_id,
                        "parent_run_id": outcome.parent_run_id}
            baselines = train_baselines(str(store), config.baseline_config, modalities, workdir / "baseline-mlp",
                                        tracking, progress)
    from dgnode.pipeline.summary import write_plots

    label_names = list(scan.label_names)
    return PipelineResult(
        workdir=workdir.uri,
        corpus_root=corpus_root.uri,
        manifest=str(paths["manifest"]),
        store=store,
        search_dir=search_dir.uri,
        tracking_uri=tracking_uri,
        stage_seconds=timings,
        scan=scan.summary(),
        extraction=extraction.as_dict(),
        search=outcome,
        label_names=label_names,
        baselines=baselines,
        plots=write_plots(workdir / "plots", outcome.test, baselines, label_names),
        synth=None if config.corpus_root else config.synth,
    )


def _say(message: str) -> None:
    print(message, flush=True)


def _stage_location(location: Any) -> Any:
    """What the corpus and scan stages take: a local ``Path`` as before, or the ``s3://`` URI."""
    return location.uri if location.is_remote else location.local_path()


def _synthesize(corpus_root: Any, synth: SynthConfig, progress: bool) -> None:
    """Generate the mini corpus at ``corpus_root``; under an ``s3://`` workdir it is generated in
    a local temporary directory and uploaded, so every node reads it from there."""
    from dgnode.corpus.synth import synthesize_corpus

    if not corpus_root.is_remote:
        synthesize_corpus(corpus_root.local_path(), synth, progress=progress)
        return
    import tempfile

    import pyarrow.fs as pafs

    with tempfile.TemporaryDirectory(prefix="dgnode-corpus-") as scratch:
        synthesize_corpus(Path(scratch) / "corpus", synth, progress=progress)
        pafs.copy_files(str(Path(scratch) / "corpus"), corpus_root.path, destination_filesystem=corpus_root.fs)
