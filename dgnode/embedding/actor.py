"""The embedding stage: preprocessed batches in, raw ImageBind vectors out.

:class:`Embedder` runs each modality in chunks of its planned batch size
(:mod:`dgnode.embedding.memory`). On an out-of-memory error it halves that modality's chunk
size, for the rest of its life, and retries the same items: no item is dropped. Only an item
that does not fit even alone gets an error (and becomes a failure row). On CUDA the next
chunk's upload (pinned memory, a non-blocking copy on a side stream:
:mod:`dgnode.embedding.transfer`) starts before the current chunk runs, so copies overlap
compute; an out-of-memory error discards it, and the retry gathers its rows again at the new
size. Peak memory per batch
is measured with ``torch.cuda.max_memory_allocated`` on CUDA; on the CPU there is no per-batch
peak to read, so the resident set size after each forward is recorded instead (an
underestimate of the true peak) and labelled ``rss``.

:class:`EmbedActor` is the callable class Ray Data's ``ActorPoolStrategy`` instantiates once per
actor (model loaded once) and calls with numpy batches; it also tokenizes the cleaned
transcripts (the tokenizer lives in ImageBind's model code, which only the actors import).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from dgnode.embedding.model import LoadedImageBind, build_imagebind
from dgnode.embedding.transfer import ChunkFeeder, Upload
from dgnode.media.config import TextConfig
from dgnode.media.text import tokenize

__all__ = [
    "BatchStats",
    "EmbedActor",
    "Embedder",
    "INPUT_COLUMNS",
    "OutOfMemoryError",
    "simulated_oom_hook",
]

log = logging.getLogger(__name__)

# Raised by the CUDA caching allocator (torch.cuda.OutOfMemoryError is the same class).
OutOfMemoryError = torch.OutOfMemoryError
# Columns of a preprocessed batch that are model inputs; everything else passes through.
INPUT_COLUMNS = ("text", "audio", "vision")

FaultHook = Callable[[str, int], None]


@dataclass
class BatchStats:
    items: int
    seconds: float
    peak_memory_bytes: int
    memory_kind: str  # "cuda_max_allocated" or "rss"
    chunk_sizes: dict[str, int]
    oom_retries: int = 0
    forwards: list[tuple[str, int]] = field(default_factory=list)  # attempted (modality, chunk length)


class Embedder:
    """Chunked, OOM-tolerant forward passes of one loaded model."""

    def __init__(
        self,
        loaded: LoadedImageBind,
        chunk_sizes: dict[str, int],
        fault_hook: FaultHook | None = None,
        prefetch: bool | None = None,
    ) -> None:
        missing = [m for m in loaded.modalities if m not in chunk_sizes]
        if missing:
            raise ValueError(f"no chunk size for {missing}")
        self.loaded = loaded
        self.chunk_sizes = {m: max(1, int(chunk_sizes[m])) for m in loaded.modalities}
        self.fault_hook = fault_hook
        self.feeder = ChunkFeeder(loaded)
        # One chunk ahead on CUDA, where its copy overlaps compute; on the CPU it would only hold
        # a second chunk (tests turn it on to check the bookkeeping).
        self.prefetch = self.feeder.cuda if prefetch is None else prefetch
        self.history: list[BatchStats] = []

    def embed(self, batch: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], BatchStats]:
        """Vectors ``emb_<m>`` ``(n, dim)`` float32 (zeros where an input had an error) and the
        updated ``error_<m>`` columns, for every modality of the model present in ``batch``."""
        cuda = self.loaded.device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(self.loaded.device)
        started = time.perf_counter()
        n = len(batch["utt_id"])
        stats = BatchStats(n, 0.0, 0, "cuda_max_allocated" if cuda else "rss", {})
        out: dict[str, np.ndarray] = {}
        for modality in self.loaded.modalities:
            if modality not in batch:
                continue
            errors = np.asarray(batch.get(f"error_{modality}", np.full(n, "")), dtype=object).copy()
            vectors = np.zeros((n, self.loaded.spec.out_embed_dim), np.float32)
            pending = [i for i in range(n) if not errors[i]]
            self._run(modality, batch[modality], pending, vectors, errors, stats)
            out[f"emb_{modality}"] = vectors
            out[f"error_{modality}"] = errors.astype(str)
        stats.seconds = time.perf_counter() - started
        stats.chunk_sizes = dict(self.chunk_sizes)
        if cuda:
            stats.peak_memory_bytes = int(torch.cuda.max_memory_allocated(self.loaded.device))
        log.info(
            "embedded %d items in %.2fs, peak %s %.1f MB, chunk sizes %s, OOM retries %d",
            n, stats.seconds, stats.memory_kind, stats.peak_memory_bytes / 1e6, stats.chunk_sizes, stats.oom_retries,
        )
        self.history.append(stats)
        return out, stats

    def _run(
        self,
        modality: str,
        inputs: np.ndarray,
        pending: list[int],
        vectors: np.ndarray,
        errors: np.ndarray,
        stats: BatchStats,
    ) -> None:
        position = 0
        ahead: Upload | None = None  # the next chunk, started while the current one runs
        while position < len(pending):
            size = self.chunk_sizes[modality]
            chunk = pending[position : position + size]
            stats.forwards.append((modality, len(chunk)))
            try:
                if self.fault_hook is not None:
                    self.fault_hook(modality, len(chunk))
                upload = ahead if ahead is not None and ahead.rows == tuple(chunk) else self.feeder.start(inputs, chunk)
                ahead = None
                tensor = upload.wait()
                following = pending[position + len(chunk) : position + len(chunk) + size]
                if self.prefetch and following:
                    ahead = self.feeder.start(inputs, following)
                result = self.loaded.run(modality, tensor)
            except OutOfMemoryError as error:
                upload = tensor = ahead = None  # free the device copies before the retry
                self._release()
                stats.oom_retries += 1
                if len(chunk) == 1:
                    errors[chunk[0]] = f"OutOfMemoryError: one {modality} item does not fit ({str(error)[:200]})"
                    position += 1
                    continue
                self.chunk_sizes[modality] = max(1, len(chunk) // 2)
                log.warning("out of memory on %d %s items: batch size now %d", len(chunk), modality, self.chunk_sizes[modality])
                continue
            vectors[chunk] = result.numpy()
            upload = tensor = None  # free this chunk's device input now, not when the next one replaces it
            position += len(chunk)
            if not self.loaded.device.type == "cuda":
                stats.peak_memory_bytes = max(stats.peak_memory_bytes, _rss_bytes())

    def _release(self) -> None:
        if self.loaded.device.type == "cuda":
            torch.cuda.empty_cache()


def _rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def simulated_oom_hook(max_items: int) -> FaultHook:
    """A fault hook that raises an out-of-memory error for chunks above ``max_items`` (tests, demos)."""

    def hook(modality: str, items: int) -> None:
        if items > max_items:
            raise OutOfMemoryError(f"simulated: {items} {modality} items exceed {max_items}")

    return hook


class EmbedActor:
    """Ray Data callable class: builds the model once, embeds numpy batches.

    Output columns: ``utt_id``, ``emb_<m>``, ``error_<m>``, every other non-input column of the
    batch unchanged, and per row ``seconds_embed`` (the batch's time shared evenly),
    ``embed_batch`` (an id of the call) and that call's ``peak_memory_bytes`` and ``oom_retries``.
    """

    def __init__(
        self,
        kind: str,
        modalities: Sequence[str],
        chunk_sizes: dict[str, int],
        checkpoint: str | None = None,
        checkpoint_sha256: str | None = None,
        device: str = "auto",
        seed: int = 0,
        simulate_oom_above: int | None = None,
        text_config: TextConfig | None = None,
        dtype: str | None = None,
    ) -> None:
        self.text_config = text_config or TextConfig()
        self.calls = 0
        loaded = build_imagebind(
            kind, checkpoint, modalities=modalities, device=device, seed=seed, checkpoint_sha256=checkpoint_sha256,
            dtype=getattr(torch, dtype) if dtype else None,
        )
        hook = simulated_oom_hook(simulate_oom_above) if simulate_oom_above else None
        self.embedder = Embedder(loaded, chunk_sizes, hook)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if "text" in batch and batch["text"].dtype.kind in "UO":
            # Cleaned transcripts from the CPU stage -> (n, 77) BPE ids (milliseconds per batch).
            batch = {**batch, "text": tokenize([str(t) for t in batch["text"]], self.text_config)}
        vectors, stats = self.embedder.embed(batch)
        n = len(batch["utt_id"])
        out = {key: value for key, value in batch.items() if key not in INPUT_COLUMNS}
        out.update(vectors)
        self.calls += 1
        out["seconds_embed"] = np.full(n, stats.seconds / max(n, 1))
        out["embed_batch"] = np.full(n, f"{os.getpid()}-{id(self):x}-{self.calls}")
        out["peak_memory_bytes"] = np.full(n, stats.peak_memory_bytes, dtype=np.int64)
        out["oom_retries"] = np.full(n, stats.oom_retries, dtype=np.int64)
        return out
