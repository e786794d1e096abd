"""The options of an extraction run (``dgnode extract``, ``jobs/extract.py``, the pipeline job)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from dgnode.media.config import MediaCacheConfig, MediaConfig

# The modalities ImageBind embeds for dgnode (its thermal, depth and IMU heads are not built).
EXTRACTED_MODALITIES = ("text", "audio", "vision")

__all__ = ["EXTRACTED_MODALITIES", "ExtractConfig"]


@dataclass
class ExtractConfig:
    """Embed manifest utterances with ImageBind into a feature store, on Ray Data.

    Attributes:
        manifest: manifest.parquet of `dgnode corpus scan` (or the directory holding it); a path or s3://bucket/key
        store: feature store directory or s3://bucket/prefix (created; a re-run resumes and skips what is stored)
        model: ImageBind size (tiny: a random-init demo model)
        checkpoint: imagebind_huge.pth (loaded with weights_only=True, memory-mapped)
        modalities: subset of text, audio, vision to embed
        gpu_memory_gb: memory budget per embedding actor; sets the batch size per modality
        dtype: model dtype (auto: float16 on CUDA, float32 on the CPU); sets the batch plan too
        media: preprocessing of every modality (recorded in the store's metadata)
        media_cache: per-node cache of media fetched from object storage (s3:// paths in the manifest)
        address: Ray cluster address (default: RAY_ADDRESS, else a local Ray)
        limit: extract at most this many not-yet-stored utterances
        decode_batch_size: utterances per CPU decode task
        decode_tasks: at most this many concurrent decode tasks (default: as the CPUs allow)
        max_batch_size: cap on utterances per embedding batch
        num_actors: embedding actors at most (default: one per GPU, else 1); the pool grows to it as work queues up
        min_actors: embedding actors started at once, before the pool grows (at most num_actors)
        device: where the model runs; cuda asks Ray for GPUs even before a GPU node exists
        seed: seed of a random-init model (tiny, or huge without weights in tests)
        simulate_oom_above: testing aid: fail forward passes above this many items as out of memory
        progress: show a progress bar
    """

    manifest: str = ""
    store: str = ""
    model: Literal["tiny", "huge"] = "huge"
    checkpoint: str | None = None
    modalities: list[str] = field(default_factory=lambda: list(EXTRACTED_MODALITIES))
    gpu_memory_gb: float = 24.0
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"
    media: MediaConfig = field(default_factory=MediaConfig)
    media_cache: MediaCacheConfig = field(default_factory=MediaCacheConfig)
    address: str | None = None
    limit: int | None = None
    decode_batch_size: int = 4
    decode_tasks: int | None = None
    max_batch_size: int = 32
    num_actors: int | None = None
    min_actors: int = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0
    simulate_oom_above: int | None = None
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
        if self.min_actors < 1 or (self.num_actors is not None and self.min_actors > self.num_actors):
            raise ValueError(f"min_actors must be between 1 and num_actors ({self.num_actors}), got {self.min_actors}")
        if self.gpu_memory_gb <= 0:
            raise ValueError("gpu_memory_gb must be positive")
