"""The main job: raw corpus -> manifest -> ImageBind features -> DGODE search -> best model on
test, beside a context-free MLP and the majority class.

With no corpus given it generates a mini-IEMOCAP (``dataset="meld"``: a mini MELD release) in the
raw format whose media carry weak, noisy emotion cues (:mod:`dgnode.corpus.synth_cues`) and extracts with the tiny random-init ImageBind
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
import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dgnode.corpus.labels import LabelSchemeName
from dgnode.corpus.synth_plan import SynthConfig
from dgnode.media.config import MediaCacheConfig
from dgnode.tuning.settings import TuneSettings

__all__ = ["PipelineConfig", "PipelineResult", "run_pipeline"]

REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _demo_search() -> TuneSettings:
    # Four short trials fit the demo's two minutes on two cores; a real run sets --tune.trials.
    # One at a time: as fast on two cores, and TPE then proposes the same trials every run.
    return TuneSettings(trials=4, max_concurrent=1, experiment=DEMO_EXPERIMENT)


DEMO_EXPERIMENT = "dgnode-pipeline"  # MELD runs go to DEMO_EXPERIMENT-meld (and register that model name)


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
        dataset: iemocap or meld (auto: the generated corpus's, or what corpus_root holds)
        corpus_root: raw IEMOCAP tree (local or s3://BUCKET/PREFIX) or MELD.Raw folder (default: $IEMOCAP_ROOT, for MELD $MELD_ROOT, else a generated mini corpus)
        checkpoint: imagebind_huge.pth (default: $IMAGEBIND_CHECKPOINT; without it the tiny random-init model)
        labels: label scheme of the scan (default: the dataset's, merc6 or meld7)
        synth: the generated corpus when there is no corpus_root (seed, dialogs, cues, ...; its dataset follows --dataset)
        modalities: modalities to extract and train on
        gpu_memory_gb: GPU memory budget that sets the extraction batch sizes
        media_cache: per-node cache of the media extraction fetches from an s3:// corpus
        extract_overrides: `dgnode extract` options for the extraction, e.g. {num_actors: 2, max_batch_size: 8} (not those set here)
        train_config: the training config the search varies (YAML)
        train_overrides: dotted training-config keys applied on top of train_config, e.g. {train.batch_size: 8}
        space: the search space (YAML)
        baseline_config: the context-free MLP's training config (YAML), trained once (null: no baselines)
        tune: the search's settings (trials, epochs, concurrency, workers, experiment, ...)
        tracking_uri: MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else WORKDIR/mlflow.db)
        address: Ray address (default: a local Ray, or the job's cluster under `ray job submit`)
    """

    workdir: str = "demo_output"
    dataset: Literal["auto", "iemocap", "meld"] = "auto"
    corpus_root: str | None = None
    checkpoint: str | None = None
    labels: LabelSchemeName | None = None
    synth: SynthConfig = field(default_factory=_demo_corpus)
    modalities: list[str] = field(default_factory=lambda: ["text", "audio", "vision"])
    gpu_memory_gb: float = 24.0
    media_cache: MediaCacheConfig = field(default_factory=MediaCacheConfig)
    extract_overrides: dict[str, Any] = field(default_factory=dict)
    train_config: str = str(REPO_CONFIGS / "dgode_demo.yaml")
    train_overrides: dict[str, Any] = field(default_factory=dict)
    space: str = str(REPO_CONFIGS / "search_space_demo.yaml")
    baseline_config: str | None = str(REPO_CONFIGS / "baseline_mlp_demo.yaml")
    tune: TuneSettings = field(default_factory=_demo_search)
    tracking_uri: str | None = None
    address: str | None = None

    def with_environment(self, demo: bool = False) -> "PipelineConfig":
        """``corpus_root``/``checkpoint`` default to ``IEMOCAP_ROOT`` (``MELD_ROOT`` for
        ``dataset="meld"``)/``IMAGEBIND_CHECKPOINT``; ``demo`` ignores both (the embedded default)."""
        if demo:
            return dataclasses.replace(self, corpus_root=None, checkpoint=None)
        root_variable = "MELD_ROOT" if self.dataset == "meld" else "IEMOCAP_ROOT"
        return dataclasses.replace(self, corpus_root=self.corpus_root or os.environ.get(root_variable) or None,
                                   checkpoint=self.checkpoint or os.environ.get("IMAGEBIND_CHECKPOINT") or None)

    def synth_config(self) -> SynthConfig:
        """The generated corpus's settings, its dataset set by ``dataset`` (a conflict is an error)."""
        from dgnode.errors import InputError

        if self.dataset == "auto" or self.dataset == self.synth.dataset:
            return self.synth
        if self.synth.dataset != "iemocap":  # set on purpose, and not to --dataset
            raise InputError(f"--dataset {self.dataset} and --synth.dataset {self.synth.dataset} disagree")
        return dataclasses.replace(self.synth, dataset=self.dataset)


@dataclass
class PipelineResult:
    """Where each stage wrote (a ``Path`` under a local workdir, an ``s3://`` URI under a remote
    one) and what it found."""

    workdir: Path | str
    corpus_root: Path | str
    manifest: Path | str
    store: Path | str
    search_dir: Path | str
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

    from dgnode.corpus.detect import detect_dataset, scan_release
    from dgnode.corpus.scan import write_scan
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
    _extract_config(config, manifest="", store="", model="tiny")
    timings: dict[str, float] = {}

    @contextlib.contextmanager
    def timed(stage: str):
        start = time.perf_counter()
        yield
        timings[stage] = time.perf_counter() - start
        _say(f"{stage:<13} done in {timings[stage]:5.1f} s")

    synth = config.synth_config()
    if config.corpus_root:
        # An s3:// root is checked by the scan (missing bucket or prefix: one error naming it).
        remote = config.corpus_root.startswith("s3://")
        corpus_root = config.corpus_root if remote else Path(config.corpus_root)
        if not remote and not corpus_root.exists():
            raise InputError(f"corpus root not found ({'MELD_ROOT' if config.dataset == 'meld' else 'IEMOCAP_ROOT'})",
                             path=str(corpus_root))
        model = "huge"
        if not config.checkpoint:
            raise InputError("a real corpus needs the ImageBind-huge checkpoint: set IMAGEBIND_CHECKPOINT or --checkpoint")
        dataset = detect_dataset(corpus_root) if config.dataset == "auto" else config.dataset
    else:
        model = "huge" if config.checkpoint else "tiny"
        dataset = synth.dataset
    # MELD's stages get folders of their own: one workdir can hold an IEMOCAP and a MELD demo.
    suffix = "" if dataset == "iemocap" else f"-{dataset}"
    if not config.corpus_root:
        generated = workdir / f"corpus{suffix}"
        with timed("synth corpus"):
            _synthesize(generated, synth, progress)
        corpus_root = _as_given(generated)

    with timed("scan"):
        # A second or two (MELD: probing each clip's header): no bar.
        scan_dir = workdir / f"scan{suffix}"
        # MELD's clip archives unpack on this machine's disk (a temporary directory under an s3:// workdir).
        unpack_dir = None if scan_dir.is_remote else scan_dir.local_path() / "unpacked"
        scan = scan_release(corpus_root, dataset, config.labels, progress=False, unpack_dir=unpack_dir)
        paths = write_scan(scan, scan_dir)

    # Under `ray job submit` RAY_ADDRESS names the job's cluster; a local Ray starts otherwise.
    with ray_session(config.address):
        store = _as_given(workdir / f"features-{model}{suffix}")
        with timed("extract"):
            # The bar is drawn here, from the batches as they are written (the stage's own is off).
            bar = progress_bar(total=len(scan.manifest), desc="extract", unit="utt", enabled=progress)
            try:
                extraction = run_extraction(
                    _extract_config(config, manifest=str(paths["manifest"]), store=str(store), model=model),
                    on_batch=lambda report: bar.update(len(report.utt_ids)),
                )
            finally:
                bar.close()
        search_dir = workdir / f"search{suffix}-{time.strftime('%Y%m%d-%H%M%S')}"
        with timed("tune + test"):
            tune = config.tune
            if suffix and tune.experiment == DEMO_EXPERIMENT:
                tune = dataclasses.replace(tune, experiment=DEMO_EXPERIMENT + suffix)
            outcome = run_search(search_dir, replace_dotted(train_config, {"data.store": str(store)}), config.space,
                                 tune, tracking_uri=tracking_uri, progress=progress)
            _log_extraction(tracking_uri, outcome, extraction)
    baselines = None
    if config.baseline_config:
        from dgnode.pipeline.baselines import train_baselines

        with timed("baselines"):
            tracking = {"tracking_uri": tracking_uri, "experiment_id": outcome.experiment_id,
                        "parent_run_id": outcome.parent_run_id}
            baselines = train_baselines(str(store), config.baseline_config, modalities, workdir / f"baseline-mlp{suffix}",
                                        tracking, progress)
    from dgnode.pipeline.summary import write_plots

    label_names = list(scan.label_names)
    return PipelineResult(
        workdir=_as_given(workdir),
        corpus_root=corpus_root,
        manifest=_as_given(resolve(paths["manifest"])),
        store=store,
        search_dir=_as_given(search_dir),
        tracking_uri=tracking_uri,
        stage_seconds=timings,
        scan=scan.summary(),
        extraction=extraction.as_dict(),
        search=outcome,
        label_names=label_names,
        baselines=baselines,
        plots=write_plots(workdir / f"plots{suffix}", outcome.test, baselines, label_names),
        synth=None if config.corpus_root else synth,
    )


# What the pipeline itself decides for its extraction (the rest may come from extract_overrides).
_EXTRACT_OWN = ("manifest", "store", "model", "checkpoint", "modalities", "gpu_memory_gb", "media_cache", "address",
                "progress")


def _extract_config(config: PipelineConfig, manifest: str, store: str, model: str) -> Any:
    """The extraction's options: the pipeline's own, then ``config.extract_overrides`` (checked
    like a file: an unknown key or a bad value is one error line; one the pipeline sets is refused)."""
    from dgnode.embedding.config import ExtractConfig
    from dgnode.errors import InputError
    from dgnode.options import replace_dotted

    owned = sorted(key for key in config.extract_overrides if key.split(".")[0] in _EXTRACT_OWN)
    if owned:
        raise InputError(f"extract_overrides: {', '.join(owned)} are set by the pipeline (use its own options)")
    extract = ExtractConfig(manifest=manifest, store=store, model=model, checkpoint=config.checkpoint,
                            modalities=list(config.modalities), gpu_memory_gb=config.gpu_memory_gb,
                            media_cache=config.media_cache, progress=False)
    return replace_dotted(extract, config.extract_overrides, source="extract_overrides")


def _log_extraction(tracking_uri: str, outcome: Any, extraction: Any) -> None:
    """The extraction's counts and the bytes each node fetched, on the search's parent run."""
    from dgnode.tracking.runs import TrackedRun

    run = TrackedRun(tracking_uri, outcome.parent_run_id, outcome.experiment_id)
    run.log_metrics(extraction.metrics())
    run.log_dict(extraction.as_dict(), "extraction.json")


def _say(message: str) -> None:
    print(message, flush=True)


def _as_given(location: Any) -> Path | str:
    """A local location as the ``Path`` the stages always took, a remote one as its URI."""
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
