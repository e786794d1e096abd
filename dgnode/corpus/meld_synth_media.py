"""Clips of a synthetic MELD release: one MP4 per utterance, H.264 video and AAC audio, as MELD's.

**Video.** :data:`CLIP_WIDTH` x :data:`CLIP_HEIGHT` (16:9), 24000/1001 fps, H.264 (libx264,
``yuv420p``, a keyframe every second) in MP4. A full frame of the scene: a flat background and one
disc per member of the dialogue's cast ("faces" in a row, :func:`face_centres`): several people in
the shot, no split screen, as in Friends. The speaker's disc shows the utterance's emotion cue
(its colour offset and radius, :mod:`dgnode.corpus.meld_synth_cues`) when the vision cue was not
dropped; every other disc is plain :data:`SKIN_RGB`.

**Audio.** 16 kHz mono AAC: low noise plus, for the utterance's span (the whole clip, or its CSV
span for a clip cut too long), the speaker's voice: a tone with
:data:`~dgnode.corpus.synth_cues.VOICE_HARMONICS` harmonics at the speaker's pitch times the
cue's, scaled and gliding by the cue (:func:`~dgnode.corpus.synth_media.tone`).

A **corrupt** clip is a real clip cut to its first :data:`CORRUPT_BYTES` bytes: the MP4 index
(``moov``, written last) is lost, as in the real ``dia125_utt3.mp4``, and no reader opens it.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from dgnode.corpus.synth_cues import VOICE_HARMONICS, UtteranceCue
from dgnode.corpus.synth_media import NOISE_STD, SAMPLE_RATE, tone

__all__ = [
    "BACKGROUND_RGB", "CLIP_FPS", "CLIP_HEIGHT", "CLIP_WIDTH", "CORRUPT_BYTES", "FACE_RADIUS", "SKIN_RGB",
    "clip_picture", "face_centres", "write_clip", "write_corrupt_clip",
]

CLIP_WIDTH, CLIP_HEIGHT = 448, 252
CLIP_FPS = Fraction(24000, 1001)
BACKGROUND_RGB = (110, 120, 100)
SKIN_RGB = (170, 130, 110)
FACE_RADIUS = 30
CORRUPT_BYTES = 2048
_FACE_SCALE = 0.8  # cue radii (IEMOCAP's, for a 360-pixel half) on a smaller frame
_AUDIO_FRAME = 1024


def face_centres(cast_size: int) -> list[tuple[int, int]]:
    """``(x, y)`` of each cast member's face: evenly spaced across the frame, at 40 % height."""
    return [(int(round((i + 1) * CLIP_WIDTH / (cast_size + 1))), int(CLIP_HEIGHT * 0.4)) for i in range(cast_size)]


def clip_picture(cast_size: int, speaker: int, cue: UtteranceCue | None) -> np.ndarray:
    """The ``(CLIP_HEIGHT, CLIP_WIDTH, 3)`` uint8 frame of an utterance (see the module docstring)."""
    frame = np.empty((CLIP_HEIGHT, CLIP_WIDTH, 3), dtype=np.uint8)
    frame[:] = BACKGROUND_RGB
    rows, columns = np.ogrid[:CLIP_HEIGHT, :CLIP_WIDTH]
    for index, (x, y) in enumerate(face_centres(cast_size)):
        colour, radius = np.asarray(SKIN_RGB), FACE_RADIUS
        if index == speaker and cue is not None and cue.face is not None:
            colour, radius = colour + np.asarray(cue.face), int(round(cue.radius * _FACE_SCALE))
        frame[(columns - x) ** 2 + (rows - y) ** 2 <= radius**2] = np.clip(colour, 0, 255).astype(np.uint8)
    return frame


def _voice(rng: np.random.Generator, samples: int, spoken: int, pitch_hz: float, cue: UtteranceCue | None) -> np.ndarray:
    signal = rng.standard_normal(samples).astype(np.float64) * NOISE_STD
    voice = {"loudness": cue.loudness, "glide": cue.glide, "harmonics": VOICE_HARMONICS} if cue else {}
    signal[:spoken] += tone(spoken, pitch_hz * (cue.pitch if cue else 1.0), **voice)
    return (np.clip(np.round(signal), -32768, 32767) / 32768.0).astype(np.float32)


def write_clip(path: Path, seconds: float, spoken_s: float, cast_size: int, speaker: int, pitch_hz: float,
               cue: UtteranceCue | None, rng: np.random.Generator) -> int:
    """Encode one utterance's clip of ``seconds`` (the voice during the first ``spoken_s``); returns
    the bytes written."""
    import av

    frames = max(1, int(round(seconds * CLIP_FPS)))
    samples = max(1, int(round(seconds * SAMPLE_RATE)))
    audio = _voice(rng, samples, min(samples, int(round(spoken_s * SAMPLE_RATE))), pitch_hz, cue)
    picture = av.VideoFrame.from_ndarray(clip_picture(cast_size, speaker, cue), format="rgb24").reformat(format="yuv420p")
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=CLIP_FPS)
        video.width, video.height, video.pix_fmt = CLIP_WIDTH, CLIP_HEIGHT, "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "28", "g": str(round(CLIP_FPS)), "threads": "1"}
        sound = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        # ffmpeg's default AAC coder spends 10x longer for quality a noise-and-tone track does not need.
        sound.options, sound.bit_rate = {"aac_coder": "fast"}, 32000
        for index in range(frames):
            picture.pts = index
            for packet in video.encode(picture):
                container.mux(packet)
        for start in range(0, samples, _AUDIO_FRAME):
            chunk = av.AudioFrame.from_ndarray(audio[start:start + _AUDIO_FRAME].reshape(1, -1), format="flt",
                                               layout="mono")
            chunk.sample_rate, chunk.pts = SAMPLE_RATE, start
            for packet in sound.encode(chunk):
                container.mux(packet)
        for stream in (video, sound):
            for packet in stream.encode():
                container.mux(packet)
    return path.stat().st_size


def write_corrupt_clip(path: Path, rng: np.random.Generator) -> int:
    """A clip cut to its first :data:`CORRUPT_BYTES` bytes (see the module docstring)."""
    write_clip(path, 1.0, 1.0, 2, 0, 150.0, None, rng)
    path.write_bytes(path.read_bytes()[:CORRUPT_BYTES])
    return CORRUPT_BYTES
