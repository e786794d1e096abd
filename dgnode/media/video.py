"""Utterance video -> ImageBind's video input ``(clips * crops, 3, frames_per_clip, size, size)``.

IEMOCAP has one split-screen video per dialogue (720x480, about 30 fps, the two actors side by
side); an utterance is the time span ``[start_s, end_s]`` of it. Only the frames ImageBind's
preprocessing would keep are decoded (decord ``get_batch`` of those indices: 10 frames for the
default 5 clips x 2 frames, however long the dialogue is).

The preprocessing reproduces ``imagebind.data.load_and_transform_video_data`` on the segment:

1. Clips: 5 clips of 2 s spread over the segment (:func:`dgnode.media.clips.clip_timepoints`).
   A clip ``[a, b]`` (seconds from the segment start, ``b`` clamped to the segment end, as the
   decoder of an utterance file clamps to its end) holds the frames ``i`` with
   ``ceil(fps (start + a)) <= i < ceil(fps (start + b))``, i.e. timestamps ``i / fps`` inside
   the span; 2 of them are taken uniformly (``linspace(0, t - 1, 2)``: the first and the last).
   A clip with no frame inside its window (a segment shorter than one frame, or running past the
   last frame) repeats the frame on screen at its start, clamped to the last frame.
2. Crop to the speaker's half (``left`` = ``x[0 : W/2]``, ``right`` = ``x[W/2 : W]``) or keep
   the full frame (``crop="full"``, or a row whose side is ``full``: MELD's one-clip-per-utterance
   videos, see :func:`crop_speaker`).
3. Pixels to [0, 1], short side resized to 224 (bilinear, ``align_corners=False``), CLIP mean/std
   normalisation.
4. Three spatial crops of 224: left/center/right when the frame is wider than high, else
   top/center/bottom (ImageBind's ``SpatialCrop``). Output order: clip-major, then crop.

A segment that starts after the last decodable frame is an error (a truncated video or wrong
times), as in ImageBind, whose decoder refuses a clip that starts after the video's end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from dgnode.media.clips import clip_timepoints
from dgnode.media.config import VideoConfig

__all__ = [
    "FramePlan", "VideoSegment", "VideoSource", "crop_speaker",
    "frames_to_imagebind", "plan_segment_frames", "read_video_segment", "segment_frames", "spatial_crop",
]




@dataclass
class FramePlan:
    """Which frames of the dialogue video one utterance uses."""

    indices: np.ndarray  # (clips, frames_per_clip) int64, absolute frame indices
    clamped: np.ndarray  # (clips,) bool: no frame inside the clip's window, nearest one repeated
    fps: float
    num_frames: int

    @property
    def times(self) -> np.ndarray:
        """Timestamps ``index / fps`` in seconds from the start of the video, like ``indices``."""
        return self.indices / self.fps


@dataclass
class VideoSegment:
    pixels: torch.Tensor  # VideoConfig.output_shape, float32, normalised
    plan: FramePlan


def plan_segment_frames(
    start_s: float, end_s: float, fps: float, num_frames: int, config: VideoConfig | None = None
) -> FramePlan:
    """Frame indices of the segment's clips (see the module docstring for the rule)."""
    config = config or VideoConfig()
    if num_frames <= 0 or not fps > 0:
        raise ValueError(f"video has no decodable frames (frames={num_frames}, fps={fps})")
    if not 0 <= start_s <= end_s:
        raise ValueError(f"segment times must satisfy 0 <= start <= end, got [{start_s}, {end_s}]")
    video_end = num_frames / fps
    if start_s >= video_end:
        raise ValueError(
            f"segment [{start_s:.3f}, {end_s:.3f}] s starts after the video's last frame "
            f"({num_frames} frames at {fps:.3f} fps = {video_end:.3f} s): truncated video or wrong times"
        )
    start = Fraction(start_s)
    duration = Fraction(end_s) - start
    indices = np.zeros((config.clips_per_video, config.frames_per_clip), dtype=np.int64)
    clamped = np.zeros(config.clips_per_video, dtype=bool)
    for k, (a, b) in enumerate(clip_timepoints(duration, config.clip_duration, config.clips_per_video)):
        first = math.ceil(fps * float(start + a))
        stop = min(math.ceil(fps * float(start + min(b, duration))), num_frames)
        if stop > first:
            count = stop - first
            # pytorchvideo's UniformTemporalSubsample: float32 linspace, truncated to integers.
            offsets = torch.linspace(0, count - 1, config.frames_per_clip).clamp(0, count - 1).long()
            indices[k] = first + offsets.numpy()
        else:
            indices[k] = min(max(math.floor(fps * float(start + a)), 0), num_frames - 1)
            clamped[k] = True
    return FramePlan(indices, clamped, float(fps), int(num_frames))


class VideoSource:
    """An open dialogue video (decord), reusable for all utterances of the dialogue."""

    def __init__(self, path: str, decode_threads: int = 1) -> None:
        import decord

        self.path = path
        self.reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=decode_threads)
        self.fps = float(self.reader.get_avg_fps())
        self.num_frames = len(self.reader)

    def frames(self, indices: np.ndarray) -> np.ndarray:
        """Decode only ``indices`` (any shape) -> ``indices.shape + (H, W, 3)`` uint8."""
        if self.reader is None:
            raise ValueError(f"{self.path}: the video reader was closed")
        flat = np.asarray(indices, dtype=np.int64).reshape(-1)
        unique, inverse = np.unique(flat, return_inverse=True)
        decoded = self.reader.get_batch(unique.tolist()).asnumpy()
        return decoded[inverse].reshape(*np.shape(indices), *decoded.shape[1:])

    def close(self) -> None:
        """Drop the reader. Do it before transforming the frames: with the reader of a long video
        still open, the float transform kept about 50 MB more resident (measured on a 5-minute
        H.264 clip against a 3-second one: 100 vs 51 MB peak; equal once the reader is gone)."""
        self.reader = None


def segment_frames(source: VideoSource, start_s: float, end_s: float, side: str | None,
                   config: VideoConfig | None = None) -> tuple[np.ndarray, FramePlan]:
    """The segment's cropped uint8 frames ``(clips, frames_per_clip, H, W, 3)`` and their plan."""
    config = config or VideoConfig()
    plan = plan_segment_frames(start_s, end_s, source.fps, source.num_frames, config)
    return crop_speaker(source.frames(plan.indices), side, config.crop), plan


def crop_speaker(frames: np.ndarray, side: str | None, crop: str = "speaker") -> np.ndarray:
    """Keep the speaker's half of split-screen frames ``(..., H, W, 3)``: left = ``x[0:W/2]``.
    Side ``full`` (a video of the utterance alone, as MELD's clips) keeps the whole frame: with
    several people in the shot and no annotation of who speaks, any crop could miss the speaker,
    while ImageBind's three spatial crops of the resized frame together cover all of it."""
    if crop == "full" or side == "full":
        return frames
    half = frames.shape[-2] // 2
    if side == "left":
        return frames[..., :half, :]
    if side == "right":
        return frames[..., half:, :]
    raise ValueError(f"speaker_side must be 'left', 'right' or 'full' to crop the speaker, got {side!r}")


def frames_to_imagebind(frames: np.ndarray, config: VideoConfig | None = None) -> torch.Tensor:
    """uint8 frames ``(clips, frames_per_clip, H, W, 3)`` -> ``config.output_shape`` float32."""
    config = config or VideoConfig()
    clips, per_clip, height, width, _ = frames.shape
    # Planar (N, 3, H, W) float before resizing: the channels-last path of interpolate allocates
    # far more on some runs, and decoding memory must not depend on luck.
    x = torch.from_numpy(np.ascontiguousarray(frames.reshape(clips * per_clip, height, width, 3).transpose(0, 3, 1, 2)))
    x = x.to(torch.float32).div_(255.0)
    if width < height:
        new_h, new_w = int(math.floor(height / width * config.size)), config.size
    else:
        new_h, new_w = config.size, int(math.floor(width / height * config.size))
    x = torch.nn.functional.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)
    mean = torch.tensor(config.mean, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(config.std, dtype=x.dtype).view(1, 3, 1, 1)
    x = x.sub_(mean).div_(std)
    x = x.reshape(clips, per_clip, 3, new_h, new_w).permute(0, 2, 1, 3, 4)  # (clips, 3, T, h, w)
    crops = [spatial_crop(x[c], config.size, i) for c in range(clips) for i in _crop_indices(config.num_crops)]
    return torch.stack(crops)


def _crop_indices(num_crops: int) -> list[int]:
    return [0, 1, 2] if num_crops == 3 else [1]


def spatial_crop(video: torch.Tensor, size: int, index: int) -> torch.Tensor:
    """ImageBind's ``uniform_crop`` of ``(..., H, W)``: 0/1/2 = left/center/right when wider than
    high, else top/center/bottom."""
    height, width = video.shape[-2:]
    y = int(math.ceil((height - size) / 2))
    x = int(math.ceil((width - size) / 2))
    if height > width:
        y = {0: 0, 1: y, 2: height - size}[index]
    else:
        x = {0: 0, 1: x, 2: width - size}[index]
    return video[..., y : y + size, x : x + size]


def read_video_segment(
    source: VideoSource | str,
    start_s: float,
    end_s: float,
    side: str | None,
    config: VideoConfig | None = None,
) -> VideoSegment:
    """Decode, crop and transform one utterance's video span (see the module docstring)."""
    config = config or VideoConfig()
    opened = not isinstance(source, VideoSource)
    if opened:
        source = VideoSource(source, config.decode_threads)
    frames, plan = segment_frames(source, start_s, end_s, side, config)
    if opened:
        source.close()  # before the transform (see VideoSource.close)
    return VideoSegment(frames_to_imagebind(frames, config), plan)
