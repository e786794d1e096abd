"""The preprocessing parameters of every modality, declared once (and torch-free: the CLI reads
them to build its flags without loading torch). Recorded in a feature store's metadata; a store
refuses rows made with other parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["AudioConfig", "CLIP_MEAN", "CLIP_STD", "MediaCacheConfig", "MediaConfig", "TextConfig", "VideoConfig"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class VideoConfig:
    """ImageBind's video preprocessing parameters plus the speaker crop."""

    clip_duration: float = 2.0
    clips_per_video: int = 5
    frames_per_clip: int = 2
    size: int = 224
    num_crops: int = 3
    crop: Literal["speaker", "full"] = "speaker"
    mean: list[float] = field(default_factory=lambda: list(CLIP_MEAN))
    std: list[float] = field(default_factory=lambda: list(CLIP_STD))
    decode_threads: int = 1

    def __post_init__(self) -> None:
        if self.num_crops not in (1, 3):
            raise ValueError(f"num_crops must be 1 or 3 (as ImageBind's SpatialCrop), got {self.num_crops}")
        if self.crop not in ("speaker", "full"):
            raise ValueError(f"crop must be 'speaker' or 'full', got {self.crop!r}")
        if self.frames_per_clip <= 0 or self.clips_per_video <= 0:
            raise ValueError("frames_per_clip and clips_per_video must be positive")

    @property
    def frames_per_item(self) -> int:
        return self.clips_per_video * self.frames_per_clip

    @property
    def output_shape(self) -> tuple[int, int, int, int, int]:
        return (self.clips_per_video * self.num_crops, 3, self.frames_per_clip, self.size, self.size)


@dataclass
class AudioConfig:
    """ImageBind's audio preprocessing parameters (defaults = ``imagebind.data``)."""

    sample_rate: int = 16000
    num_mel_bins: int = 128
    target_length: int = 204
    clip_duration: float = 2.0
    clips_per_video: int = 3
    mean: float = -4.268
    std: float = 9.138
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    low_freq: float = 20.0
    preemphasis: float = 0.97

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.num_mel_bins <= 0 or self.target_length <= 0:
            raise ValueError("sample_rate, num_mel_bins and target_length must be positive")
        if self.std <= 0:
            raise ValueError(f"std must be positive, got {self.std}")


@dataclass
class TextConfig:
    context_length: int = 77
    keep_noise_tags: bool = False


@dataclass
class MediaConfig:
    """All preprocessing parameters; recorded in the feature store's metadata."""

    video: VideoConfig = field(default_factory=VideoConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    text: TextConfig = field(default_factory=TextConfig)


@dataclass
class MediaCacheConfig:
    """Where a node keeps the media it fetches from object storage (``s3://`` paths in the
    manifest; local paths are read where they are). One cache per node, shared by every decode
    task on it: see :mod:`dgnode.media.fetch`. Not preprocessing: not recorded in a store.

    Attributes:
        dir: cache folder on each node's local disk (default: dgnode-media-<uid> in the system temp folder)
        max_gb: evict the least recently used media above this size; make it at least (decode tasks per node + 1) x the largest dialogue video
    """

    dir: str | None = None
    max_gb: float = 20.0

    def __post_init__(self) -> None:
        if not self.max_gb > 0:
            raise ValueError(f"max_gb must be positive, got {self.max_gb}")

    @property
    def max_bytes(self) -> int:
        return int(self.max_gb * 1e9)
