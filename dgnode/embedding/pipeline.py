"""Extraction: utterance manifest -> ImageBind vectors in the Parquet feature store, on Ray Data.

::

    manifest.parquet ─▶ drop utterances already stored (resume) ─▶ ray.data.from_pandas
      ─▶ map_batches(preprocess_batch)             CPU tasks: decode + cut + preprocess (small batches)
      ─▶ map_batches(EmbedActor, ActorPoolStrategy)  one model per actor (GPU when there is one),
                                                     bounded batches from the memory cost model
      ─▶ iter_batches on the driver ─▶ FeatureStore.append per batch, failures, provenance

Every batch is written as it arrives, so an interrupted run loses at most the batches in flight,
and a re-run skips what is stored. One bad item never stops the run: an input that cannot be
read gets a failure row per modality (``STORE/failures``) and its utterance is not stored (the
store holds only utterances with every requested modality); a later run retries it.
Which frames and which audio source each utterance used is kept in ``STORE/provenance``.

``engine="process"`` runs the same stages in a plain single-process loop (no Ray): the baseline
of ``bench/bench_extract.py`` and a debugging aid.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Sequence

import numpy as np
import pandas as pd

from dgnode.options import to_dict
from dgnode.embedding.memory import BatchPlan, plan_batch_sizes
from dgnode.embedding.model import EXTRACTED_MODALITIES, HUGE_NEEDS_CHECKPOINT, SPECS, sha256_file
from dgnode.errors import InputError
from dgnode.features.store import SPLITS, FeatureStore, StoreMetadata
from dgnode.media.utterance import REQUEST_COLUMNS, VISION_TRANSPORT_DTYPE, MediaConfig, preprocess_batch

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.parquet"
PROVENANCE_DIR = "provenance"
KEY_COLUMNS = ("dialog_id", "utt_id", "order", "speaker", "label", "split")
# Host memory of a decode task: the worker itself (Python, torch, decord, Ray: Ray Data measured
# up to 740 MB for a worker running batches of 4 here, and wants 25% headroom) plus, per utterance, 10 decoded 720x480
# RGB frames (10 MB), float copies while resizing (about 20 MB) and the float32 then float16
# output (18 + 9 MB), rounded up.
PREPROCESS_WORKER_BYTES = 768 * 2**20
PREPROCESS_BYTES_PER_ITEM = 64 * 2**20
NEEDED_BY_MODALITY = {
    "text": ("text",),
    "audio": ("wav_path", "video_path", "start_s", "end_s"),
    "vision": ("video_path", "start_s", "end_s", "speaker_side"),
}


@dataclass
class ExtractConfig:
    """``dgnode extract`` options; ``media`` holds every preprocessing parameter."""

    manifest: str = ""
    store: str = ""
    model: Literal["tiny", "huge"] = "huge"
    checkpoint: str | None = None
    modalities: list[str] = field(default_factory=lambda: list(EXTRACTED_MODALITIES))
    gpu_memory_gb: float = 24.0
    media: MediaConfig = field(default_factory=MediaConfig)
    address: str | None = None
    limit: int | None = None
    decode_batch_size: int = 4
    decode_tasks: int | None = None  # at most this many concurrent decode tasks (default: as CPUs allow)
    max_batch_size: int = 32
    num_actors: int | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0
    simulate_oom_above: int | None = None  # testing aid: fail forwards above this many items
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = sorted(set(self.modalities) - set(EXTRACTED_MODALITIES))
        if unknown or not self.modalities:
            raise ValueError(f"modalities must be a non-empty subset of {list(EXTRACTED_MODALITIES)}, got {self.modalities}")
        self.modalities = [m for m in EXTRACTED_MODALITIES if m in self.modalities]
        for name in ("decode_batch_size", "max_batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.limit is not None and self.limit < 0:
            raise ValueError("limit must be >= 0")
        if self.gpu_memory_gb <= 0:
            raise ValueError("gpu_memory_gb must be positive")


@dataclass
class BatchReport:
    """What one written batch did; passed to ``on_batch``."""

    index: int
    stored: int
    failed: int
    utt_ids: list[str]


@dataclass
class ExtractSummary:
    manifest_utterances: int
    already_stored: int
    requested: int
    stored: int = 0
    failed: int = 0
    duplicates: int = 0
    failures_by_modality: dict[str, int] = field(default_factory=dict)
    audio_from_video: int = 0
    batches: int = 0
    wall_seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    peak_memory_bytes: int = 0
    memory_kind: str = ""
    oom_retries: int = 0
    batch_plan: dict[str, int] = field(default_factory=dict)
    ray_batch_size: int = 0
    engine: str = "ray"
    device: str = "cpu"

    @property
    def utterances_per_second(self) -> float:
        done = self.stored + self.failed
        return done / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items()}
        data["utterances_per_second"] = self.utterances_per_second
        return data

    def table(self):
        from rich.table import Table

        table = Table(title=f"dgnode extract ({self.engine}, {self.device})", show_header=True)
        table.add_column("quantity")
        table.add_column("value", justify="right")
        rows = [
            ("utterances in manifest", self.manifest_utterances),
            ("skipped (already stored)", self.already_stored),
            ("requested this run", self.requested),
            ("stored", self.stored),
            ("failed", self.failed),
            *((f"  failed: {m}", n) for m, n in sorted(self.failures_by_modality.items())),
            ("audio from the video (wav missing)", self.audio_from_video),
            ("batches written", self.batches),
            ("utterances / s", f"{self.utterances_per_second:.2f}"),
            ("wall time, s", f"{self.wall_seconds:.1f}"),
            *((f"time {stage}, s", f"{seconds:.1f}") for stage, seconds in self.stage_seconds.items()),
            (f"peak memory per batch ({self.memory_kind or 'n/a'}), MB", f"{self.peak_memory_bytes / 1e6:.0f}"),
            ("OOM retries", self.oom_retries),
            ("batch sizes (plan)", ", ".join(f"{m} {n}" for m, n in self.batch_plan.items())),
        ]
        for name, value in rows:
            table.add_row(name, str(value))
        return table


# -- manifest ----------------------------------------------------------------------------------
def read_manifest(path: str | Path, modalities: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """The manifest rows extraction needs and the label names (Parquet metadata ``label_names``).

    ``path`` is ``manifest.parquet`` or the directory holding it. Relative media paths are taken
    relative to the manifest's directory.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_FILE
    if not path.is_file():
        raise InputError("manifest not found (expected the manifest.parquet of 'dgnode corpus scan')", path=str(path))
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise InputError(f"not a readable Parquet file ({error})", path=str(path)) from None
    needed = list(KEY_COLUMNS) + [c for m in modalities for c in NEEDED_BY_MODALITY[m]]
    needed = list(dict.fromkeys(needed))
    missing = [c for c in needed if c not in table.schema.names]
    if missing:
        raise InputError(
            f"manifest lacks column(s) {', '.join(missing)} needed to extract {', '.join(modalities)}", path=str(path)
        )
    frame = table.select(needed).to_pandas()
    nulls = {c: int(frame[c].isna().sum()) for c in ("dialog_id", "utt_id", "order", "speaker", "split")}
    nulls = {c: n for c, n in nulls.items() if n}
    if nulls:
        raise InputError(f"null values in required column(s): {nulls}", path=str(path))
    try:
        frame["label"] = frame["label"].astype("Int32")
    except (TypeError, ValueError):
        raise InputError("label must hold integer class indices or nulls", path=str(path)) from None
    duplicated = frame["utt_id"][frame["utt_id"].duplicated()].unique().tolist()
    if duplicated:
        raise InputError(f"manifest repeats utt_id(s) {duplicated[:5]}", path=str(path))
    bad_splits = sorted(set(frame["split"].dropna().astype(str)) - set(SPLITS))
    if bad_splits or frame["split"].isna().any():
        raise InputError(f"split values must be one of {list(SPLITS)}, found {bad_splits or ['null']}", path=str(path))
    for column in ("wav_path", "video_path"):
        if column in frame.columns:
            frame[column] = [_resolve(p, path.parent) for p in frame[column]]
    if "speaker_side" in frame.columns:
        bad_sides = sorted(set(frame["speaker_side"].dropna()) - {"left", "right"})
        if bad_sides:
            raise InputError(f"speaker_side must be left or right, found {bad_sides}", path=str(path))
    return frame.sort_values(["dialog_id", "order"], kind="stable").reset_index(drop=True), _label_names(table, frame)


def _resolve(value: Any, base: Path) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    candidate = Path(str(value))
    return str(candidate if candidate.is_absolute() else base / candidate)


def _label_names(table, frame: pd.DataFrame) -> list[str]:
    metadata = table.schema.metadata or {}
    raw = metadata.get(b"label_names")
    if raw is not None:
        names = json.loads(raw)
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            return names
    labels = frame["label"].dropna()
    return [f"class_{i}" for i in range(int(labels.max()) + 1)] if len(labels) else []


# -- the stages --------------------------------------------------------------------------------
def preprocess_udf(batch: pd.DataFrame, modalities: Sequence[str], media: MediaConfig) -> dict[str, np.ndarray]:
    """Ray Data task body (CPU): :func:`dgnode.media.utterance.preprocess_batch`."""
    return preprocess_batch(batch, modalities, media)


def plan_for(config: ExtractConfig, on_gpu: bool) -> BatchPlan:
    """Batch sizes per modality from the cost model; float16 on the GPU, float32 on the CPU."""
    return plan_batch_sizes(
        SPECS[config.model],
        config.modalities,
        gpu_memory_gb=config.gpu_memory_gb,
        element_bytes=2 if on_gpu else 4,
        max_batch=config.max_batch_size,
    )


def _actor_kwargs(config: ExtractConfig, plan: BatchPlan, sha: str | None, device: str) -> dict[str, Any]:
    return {
        "kind": config.model,
        "modalities": config.modalities,
        "chunk_sizes": plan.sizes,
        "checkpoint": str(Path(config.checkpoint).resolve()) if config.checkpoint else None,
        "checkpoint_sha256": sha,
        "device": device,
        "seed": config.seed,
        "simulate_oom_above": config.simulate_oom_above,
        "text_config": config.media.text,
    }


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Reuse an initialised Ray (tests, notebooks); else join ``address`` (or ``RAY_ADDRESS``, set
    for Ray job drivers) or start a local Ray with what the machine has; stop it after."""
    import ray

    if ray.is_initialized():
        yield
        return
    # "local" rather than "auto": never attach by accident to a stale cluster on this machine.
    ray.init(address=address or os.environ.get("RAY_ADDRESS") or "local", include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _requests(pending: pd.DataFrame) -> pd.DataFrame:
    """The columns the CPU stage reads (those the requested modalities need, see read_manifest)."""
    return pending[[c for c in REQUEST_COLUMNS if c in pending.columns]]


def ray_uses_gpu(config: ExtractConfig) -> bool:
    """Whether the embedding actors ask Ray for a GPU.

    ``device="cuda"`` always does, also while the cluster has no GPU node yet: the request is
    what makes an autoscaling cluster start one (with ``--num-actors N`` the pool may grow to N).
    ``"auto"`` uses GPUs when the cluster has some now; ``"cpu"`` never does.
    """
    import ray

    if config.device == "cuda":
        return True
    if config.device == "cpu":
        return False
    return int(ray.cluster_resources().get("GPU", 0)) > 0


def _ray_batches(
    pending: pd.DataFrame, config: ExtractConfig, plan: BatchPlan, ray_batch: int, sha: str | None
) -> Iterator[dict[str, np.ndarray]]:
    import ray
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the driver draws its own bar
    gpus = int(ray.cluster_resources().get("GPU", 0))
    use_gpu = ray_uses_gpu(config)
    actors = config.num_actors or (max(gpus, 1) if use_gpu else 1)
    requests = _requests(pending)
    # One small block per decode batch, so the CPU stage runs as many parallel tasks.
    chunks = [requests.iloc[i : i + config.decode_batch_size] for i in range(0, len(requests), config.decode_batch_size)]
    dataset = ray.data.from_pandas(chunks)
    dataset = dataset.map_batches(
        preprocess_udf,
        batch_size=config.decode_batch_size,
        batch_format="pandas",
        fn_kwargs={"modalities": config.modalities, "media": config.media},
        compute=ray.data.TaskPoolStrategy(size=config.decode_tasks),
        num_cpus=1,
        # A real estimate, and it keeps Ray Data from fusing these tasks into the embedding
        # actors (it fuses maps with equal resource requests), which would serialise decoding.
        memory=PREPROCESS_WORKER_BYTES + config.decode_batch_size * PREPROCESS_BYTES_PER_ITEM,
    )
    from dgnode.embedding.actor import EmbedActor

    dataset = dataset.map_batches(
        EmbedActor,
        batch_size=ray_batch,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, actors)),
        fn_constructor_kwargs=_actor_kwargs(config, plan, sha, "cuda" if use_gpu else "cpu"),
        num_gpus=1 if use_gpu else 0,
        num_cpus=1,
    )
    iterator = iter(dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1))
    try:
        yield from iterator
    finally:
        # Stops the streaming executor (and its actors) when the driver stops early.
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def _process_batches(
    pending: pd.DataFrame, config: ExtractConfig, plan: BatchPlan, ray_batch: int, sha: str | None
) -> Iterator[dict[str, np.ndarray]]:
    from dgnode.embedding.actor import EmbedActor

    actor = EmbedActor(**_actor_kwargs(config, plan, sha, config.device))
    requests = _requests(pending)
    for start in range(0, len(requests), ray_batch):
        part = requests.iloc[start : start + ray_batch]
        pieces = [
            preprocess_batch(part.iloc[i : i + config.decode_batch_size], config.modalities, config.media)
            for i in range(0, len(part), config.decode_batch_size)
        ]
        yield actor({key: np.concatenate([p[key] for p in pieces]) for key in pieces[0]})


# -- writing -----------------------------------------------------------------------------------
class _Writer:
    """Turns embedded batches into store rows, failure rows and provenance rows."""

    def __init__(
        self, store: FeatureStore, manifest: pd.DataFrame, manifest_path: str, modalities: Sequence[str],
        summary: ExtractSummary,
    ) -> None:
        self.store = store
        self.manifest_path = manifest_path
        self.by_id = manifest.set_index("utt_id", drop=False)
        self.modalities = list(modalities)
        self.summary = summary
        self.known = store.stored_utt_ids()
        self.earlier_failures = set(store.load_failures()["utt_id"])
        self.seconds = {f"decode {m}": 0.0 for m in self.modalities} | {"embed": 0.0, "write": 0.0}
        self.calls: set[str] = set()

    def write(self, batch: dict[str, np.ndarray], index: int) -> BatchReport:
        started = time.perf_counter()
        ids = [str(u) for u in batch["utt_id"]]
        n = len(ids)
        errors = {m: np.asarray(batch[f"error_{m}"]).astype(str) for m in self.modalities}
        good = np.array([all(not errors[m][i] for m in self.modalities) for i in range(n)], dtype=bool)
        rows = self.by_id.loc[ids]

        stored = 0
        if good.any():
            frame = rows.loc[good, list(KEY_COLUMNS)].reset_index(drop=True)
            for m in self.modalities:
                frame[m] = list(np.asarray(batch[f"emb_{m}"], dtype=np.float32)[good])
            stored = self.store.append(frame, skip_ids=self.known)
            self.summary.duplicates += int(good.sum()) - stored
        # Failure rows describe the latest attempt: forget earlier ones of every retried utterance.
        retried = set(ids) & self.earlier_failures
        if retried:
            self.store.clear_failures(retried)
            self.earlier_failures -= retried

        failures = []
        for i in np.flatnonzero(~good):
            row = rows.iloc[i]
            for m in self.modalities:
                if errors[m][i]:
                    failures.append({
                        "utt_id": ids[i], "dialog_id": row["dialog_id"], "modality": m,
                        "path": _failure_path(row, m, self.manifest_path), "error": errors[m][i],
                    })
                    self.summary.failures_by_modality[m] = self.summary.failures_by_modality.get(m, 0) + 1
        if failures:
            self.store.append_failures(pd.DataFrame(failures))
        self._write_provenance(batch, ids)

        for m in self.modalities:
            self.seconds[f"decode {m}"] += float(np.sum(batch.get(f"seconds_{m}", 0.0)))
        self.seconds["embed"] += float(np.sum(batch.get("seconds_embed", 0.0)))
        if "embed_batch" in batch and n:
            # Ray may split or merge the actors' output blocks: count each actor call once.
            for call, peak, retries in zip(batch["embed_batch"], batch["peak_memory_bytes"], batch["oom_retries"]):
                if call not in self.calls:
                    self.calls.add(str(call))
                    self.summary.peak_memory_bytes = max(self.summary.peak_memory_bytes, int(peak))
                    self.summary.oom_retries += int(retries)
        if "audio_source" in batch:
            self.summary.audio_from_video += int(np.sum((np.asarray(batch["audio_source"]).astype(str) == "avi") & good))
        failed = int((~good).sum())
        self.summary.stored += stored
        self.summary.failed += failed
        self.summary.batches += 1
        self.seconds["write"] += time.perf_counter() - started
        return BatchReport(index, stored, failed, ids)

    def _write_provenance(self, batch: dict[str, np.ndarray], ids: list[str]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns: dict[str, Any] = {"utt_id": ids}
        for key in ("frame_indices", "frame_times", "frames_clamped"):
            if key in batch:
                columns[key] = [list(map(_plain, row)) for row in np.asarray(batch[key])]
        for key in ("audio_source", "audio_notes"):
            if key in batch:
                columns[key] = [str(v) for v in batch[key]]
        for key in [k for k in batch if k.startswith("seconds_")]:
            columns[key] = [float(v) for v in batch[key]]
        directory = self.store.root / PROVENANCE_DIR
        directory.mkdir(exist_ok=True)
        name = f"part-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:12]}.parquet"
        temporary = directory / f".{name}.tmp"
        pq.write_table(pa.table(columns), temporary)
        temporary.replace(directory / name)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _failure_path(row: pd.Series, modality: str, manifest_path: str) -> str:
    """The file(s) behind a failed input: the video, the wav then the video, or the manifest (text)."""
    if modality == "vision":
        return str(row.get("video_path") or "")
    if modality == "audio":
        return " | ".join(str(p) for p in (row.get("wav_path"), row.get("video_path")) if p)
    return manifest_path


def load_provenance(store_root: str | Path) -> pd.DataFrame:
    """Frames and audio source used per utterance (one row per processed utterance and run)."""
    import pyarrow.parquet as pq

    parts = sorted((Path(store_root) / PROVENANCE_DIR).glob("part-*.parquet"))
    if not parts:
        return pd.DataFrame(columns=["utt_id"])
    return pd.concat([pq.read_table(p).to_pandas() for p in parts], ignore_index=True)


# -- driver ------------------------------------------------------------------------------------
def store_metadata(config: ExtractConfig, label_names: list[str], sha: str | None) -> StoreMetadata:
    spec = SPECS[config.model]
    name = spec.name if config.checkpoint else f"{spec.name}(random-init, seed={config.seed})"
    preprocessing = to_dict(config.media)
    preprocessing["vision_transport_dtype"] = np.dtype(VISION_TRANSPORT_DTYPE).name
    return StoreMetadata(
        model=name,
        dims={m: spec.out_embed_dim for m in config.modalities},
        label_names=label_names,
        checkpoint_sha256=sha,
        source="imagebind",
        preprocessing=preprocessing,
        # model_kind and seed let dgnode.streaming.media rebuild the exact extraction model.
        extra={"manifest": str(Path(config.manifest).resolve()), "model_kind": config.model, "seed": config.seed},
    )


def run_extraction(
    config: ExtractConfig,
    *,
    engine: Literal["ray", "process"] = "ray",
    on_batch: Callable[[BatchReport], None] | None = None,
) -> ExtractSummary:
    """Extract every manifest utterance not yet in ``config.store``; returns the run's summary.

    ``on_batch`` is called after each batch is written (progress hooks; raising from it stops
    the run with everything written so far kept).
    """
    started = time.perf_counter()
    if not config.manifest or not config.store:
        raise InputError("extraction needs a manifest and a store path")
    if config.model == "huge" and not config.checkpoint:
        raise InputError(HUGE_NEEDS_CHECKPOINT)
    if config.checkpoint and not Path(config.checkpoint).is_file():
        raise InputError("checkpoint file not found", path=config.checkpoint)
    manifest, label_names = read_manifest(config.manifest, config.modalities)
    sha = sha256_file(config.checkpoint) if config.checkpoint else None
    store = FeatureStore.create(config.store, store_metadata(config, label_names, sha))

    stored_before = store.stored_utt_ids()
    pending = manifest[~manifest["utt_id"].isin(stored_before)]
    already = len(manifest) - len(pending)
    if config.limit is not None:
        pending = pending.head(config.limit)
    summary = ExtractSummary(len(manifest), already, len(pending), engine=engine)
    if pending.empty:
        summary.wall_seconds = time.perf_counter() - started
        return summary

    writer = _Writer(store, manifest, config.manifest, config.modalities, summary)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(pending), unit="utt", desc="extract", disable=not config.progress)
    try:
        with contextlib.ExitStack() as stack:
            if engine == "ray":
                stack.enter_context(ray_session(config.address))
                import ray

                on_gpu = ray_uses_gpu(config)
                plan = plan_for(config, on_gpu)
                ray_batch = max(plan.sizes.values())
                batches = _ray_batches(pending, config, plan, ray_batch, sha)
            elif engine == "process":
                import torch

                on_gpu = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
                plan = plan_for(config, on_gpu)
                ray_batch = max(plan.sizes.values())
                batches = _process_batches(pending, config, plan, ray_batch, sha)
            else:
                raise ValueError(f"unknown engine {engine!r}")
            summary.batch_plan, summary.ray_batch_size = dict(plan.sizes), ray_batch
            summary.device = "cuda" if on_gpu else "cpu"
            summary.memory_kind = "cuda_max_allocated" if on_gpu else "rss"
            stack.callback(getattr(batches, "close", lambda: None))
            for index, batch in enumerate(batches):
                report = writer.write(batch, index)
                bar.update(len(report.utt_ids))
                bar.set_postfix(stored=summary.stored, failed=summary.failed)
                if on_batch is not None:
                    on_batch(report)
    finally:
        bar.close()
        summary.stage_seconds = {k: round(v, 3) for k, v in writer.seconds.items()}
        summary.wall_seconds = time.perf_counter() - started
    return summary
