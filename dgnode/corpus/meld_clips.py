"""The clips of one MELD split: which file is which utterance's, and what each file holds.

:func:`list_clips` reads a clip folder (not recursively; junk counted as everywhere): files named
``dia{D}_utt{U}.mp4`` are clips, ``final_videos_testdia{D}_utt{U}.mp4`` too (the real test set
has such names); when both names of one utterance exist the unprefixed file is used and the
prefixed one is a ``duplicate-clip`` reject. Anything else is ``unrecognised-name``.

:func:`probe_clip` opens a clip's container (PyAV, headers only: well under a millisecond a clip)
and returns its length and streams; a file that cannot be opened, or lacks a video or an audio
stream, raises :class:`ClipError` (the scan's ``corrupt-clip``: the real ``train_splits/dia125_utt3.mp4``
is one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dgnode.corpus import rejects as R
from dgnode.corpus.meld_names import parse_clip_name
from dgnode.corpus.rejects import RejectLog
from dgnode.corpus.scan import list_entries
from dgnode.corpus.tree import LocalTree

__all__ = ["ClipError", "ClipInfo", "SplitClips", "list_clips", "probe_clip"]


class ClipError(ValueError):
    """A clip that cannot be used (the message says why)."""


@dataclass
class SplitClips:
    """``paths[(dialogue, utterance)]``: the file used for that utterance; ``prefixed`` the keys
    whose file carries the ``final_videos_test`` prefix."""

    folder: Path
    paths: dict[tuple[int, int], Path] = field(default_factory=dict)
    prefixed: set[tuple[int, int]] = field(default_factory=set)


@dataclass(frozen=True)
class ClipInfo:
    duration_s: float  # the longer of the video and audio streams
    video_s: float
    audio_s: float
    width: int
    height: int


def list_clips(folder: Path, log: RejectLog) -> SplitClips:
    """The clips of a split's folder (see the module docstring)."""
    clips = SplitClips(folder)
    prefixed: dict[tuple[int, int], Path] = {}
    for entry in list_entries(LocalTree(str(folder)), str(folder), log):
        name = parse_clip_name(entry.name)
        if name is None or entry.is_dir:
            log.add(R.UNRECOGNISED_NAME, entry.path, "expected a clip named dia<D>_utt<U>.mp4; not read")
            continue
        key = (name.dialogue, name.utterance)
        if name.prefixed:
            prefixed[key] = Path(entry.path)
        else:
            clips.paths[key] = Path(entry.path)
    for key, path in sorted(prefixed.items()):
        if key in clips.paths:
            log.add(R.DUPLICATE_CLIP, path, f"the same utterance as {clips.paths[key].name}, which is used; not read")
        else:
            clips.paths[key] = path
            clips.prefixed.add(key)
    return clips


def _seconds(stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return 0.0


def probe_clip(path: Path) -> ClipInfo:
    """Length and picture size of a clip, from its headers; :class:`ClipError` when unusable."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ClipError("no video stream")
            if not container.streams.audio:
                raise ClipError("no audio stream")
            video, audio = container.streams.video[0], container.streams.audio[0]
            container_s = float(container.duration) / 1_000_000 if container.duration else 0.0
            video_s, audio_s = _seconds(video) or container_s, _seconds(audio) or container_s
            width, height = int(video.codec_context.width), int(video.codec_context.height)
    except ClipError:
        raise
    except (av.FFmpegError, OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ClipError(f"cannot be opened ({reason})") from None
    if max(video_s, audio_s) <= 0 or width <= 0 or height <= 0:
        raise ClipError(f"empty streams (video {video_s:.3f} s, {width}x{height}; audio {audio_s:.3f} s)")
    return ClipInfo(max(video_s, audio_s), video_s, audio_s, width, height)
