"""Temporal clip sampling shared by the audio and video preprocessing.

ImageBind cuts every audio and video input into a fixed number of clips of fixed length with
pytorchvideo's ``ConstantClipsPerVideoSampler``. For a segment of duration ``T``, clip length
``c`` and ``N`` clips, clip ``k`` (``k = 0..N-1``) covers

.. math::

    [\\,k \\cdot s,\\; k \\cdot s + c\\,], \\qquad s = \\frac{\\max(T - c, 0)}{N},

so the starts spread uniformly over ``[0, T - c)`` and the last clip ends at ``T - s``, not at
``T``. A segment shorter than one clip gives ``N`` identical clips ``[0, c]``; each reader then
clamps the clip to the data that exists (padding audio, repeating video frames). The arithmetic
is exact (``Fraction``) as in pytorchvideo, so sample and frame indices match ImageBind's.
"""

from __future__ import annotations

from fractions import Fraction

__all__ = ["clip_timepoints"]


def clip_timepoints(
    duration: float | Fraction, clip_duration: float | Fraction, clips_per_video: int
) -> list[tuple[Fraction, Fraction]]:
    """``clips_per_video`` (start, end) pairs in seconds from the segment start (see module doc)."""
    if clips_per_video <= 0:
        raise ValueError(f"clips_per_video must be positive, got {clips_per_video}")
    duration = Fraction(duration)
    clip = Fraction(clip_duration)
    if clip <= 0:
        raise ValueError(f"clip_duration must be positive, got {clip_duration}")
    step = max(duration - clip, Fraction(0)) / clips_per_video
    return [(k * step, k * step + clip) for k in range(clips_per_video)]
