"""Media of the synthetic corpus: wavs and split-screen MPEG-4 AVIs a test can recognise.

**Video.** 720x480, 30000/1001 fps, MPEG-4 Part 2 (``mpeg4``, as DivX/XviD) in AVI with a
``pcm_s16le`` 16 kHz stereo track equal to the dialogue wav. The left half (columns 0-359, the
actor wearing markers) is filled with :data:`LEFT_HALF_RGB`, the right half (360-719) with
:data:`RIGHT_HALF_RGB`: flat colours 50 levels apart in red and blue, so after compression and
YUV 4:2:0 a crop's mean colour tells which half it came from (within a few levels), yet close
enough that a random-init encoder maps an emotion cue to about the same direction on either side
(with colours far apart a face cue is only separable per side, which a model of a few hundred
utterances cannot learn). Rows
``CLOCK_TOP..479`` hold a frame-index clock over both halves: :data:`CLOCK_BITS` cells of
:data:`CLOCK_CELL_WIDTH` pixels, white for a 1 bit, black for 0, most significant bit first, so a
test can check which frame a reader returned (:func:`decode_frame_index`). Keyframes every
second keep seeking cheap. An emotion cue (:mod:`dgnode.corpus.synth_cues`) adds a
:class:`FaceDisc` to a half while its utterance lasts: a disc of the half's colour plus an offset
at the speaker's face position (:data:`FACE_CENTRE`), small enough that the half's mean colour
moves by a few levels at most.

**Audio.** Dialogue wavs are 16 kHz stereo int16: channel 0 is the left (marker-wearing) actor's
microphone, channel 1 the right one's. Each channel is low noise plus, while its actor speaks, a
tone with a raised-cosine envelope (pitched, scaled and gliding by the utterance's emotion cue,
:func:`tone`). An utterance wav is the speaker's channel cut at
``round(start * 16000)`` for exactly :func:`utterance_samples` samples (16 kHz mono int16).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = [
    "CLOCK_TOP",
    "FACE_CENTRE",
    "FaceDisc",
    "HALF_WIDTH",
    "LEFT_HALF_RGB",
    "NOISE_STD",
    "RIGHT_HALF_RGB",
    "SAMPLE_RATE",
    "VIDEO_FPS",
    "base_frame",
    "decode_frame_index",
    "frame_count",
    "tone",
    "utterance_samples",
    "wav_bytes",
    "write_dialogue_avi",
    "write_wav",
]

SAMPLE_RATE = 16000
VIDEO_WIDTH, VIDEO_HEIGHT = 720, 480
HALF_WIDTH = VIDEO_WIDTH // 2
VIDEO_FPS = Fraction(30000, 1001)
VIDEO_CODEC = "mpeg4"
AUDIO_CODEC = "pcm_s16le"
KEYFRAME_INTERVAL = 30
VIDEO_BIT_RATE = 1_000_000

LEFT_HALF_RGB = (150, 110, 100)
RIGHT_HALF_RGB = (100, 110, 150)
CLOCK_TOP = 448
CLOCK_BITS = 16
CLOCK_CELL_WIDTH = VIDEO_WIDTH // CLOCK_BITS  # 45
CLOCK_ON, CLOCK_OFF = 255, 0

NOISE_STD = 30.0
TONE_AMPLITUDE = 3000.0
FACE_CENTRE = (180, 210)  # (x, y) of a face in its half: "faces sit near x=180, y=180-240"


@dataclass(frozen=True)
class FaceDisc:
    """A disc drawn in one half while ``start_s <= t < end_s``: the half's colour plus ``offset``
    (RGB, clipped to 0..255), radius ``radius`` pixels, centred at :data:`FACE_CENTRE`."""

    start_s: float
    end_s: float
    left: bool
    offset: tuple[int, int, int]
    radius: int


def utterance_samples(start_s: float, end_s: float, rate: int = SAMPLE_RATE) -> int:
    """Length in samples of an utterance wav: ``round((end - start) * rate)``.

    With times of 4 decimals at 16 kHz the product is a multiple of 1.6, never a tie at .5.
    """
    return int(round((end_s - start_s) * rate))


def frame_count(duration_s: float) -> int:
    """Frames of a video lasting ``duration_s`` at :data:`VIDEO_FPS`."""
    return int(round(duration_s * VIDEO_FPS))


def base_frame(discs: tuple[FaceDisc, ...] = ()) -> np.ndarray:
    """The split-screen picture without its clock, ``(480, 720, 3)`` uint8 RGB, with ``discs``."""
    frame = np.empty((VIDEO_HEIGHT, VIDEO_WIDTH, 3), dtype=np.uint8)
    frame[:, :HALF_WIDTH] = LEFT_HALF_RGB
    frame[:, HALF_WIDTH:] = RIGHT_HALF_RGB
    rows, columns = np.ogrid[:VIDEO_HEIGHT, :HALF_WIDTH]
    for disc in discs:
        inside = (columns - FACE_CENTRE[0]) ** 2 + (rows - FACE_CENTRE[1]) ** 2 <= disc.radius**2
        half = frame[:, :HALF_WIDTH] if disc.left else frame[:, HALF_WIDTH:]
        colour = np.asarray(LEFT_HALF_RGB if disc.left else RIGHT_HALF_RGB) + np.asarray(disc.offset)
        half[inside] = np.clip(colour, 0, 255).astype(np.uint8)
    return frame


def decode_frame_index(frame: np.ndarray) -> int:
    """Read the clock of a decoded ``(480, 720, 3)`` frame: the index of the frame."""
    index = 0
    margin = 8  # cell centres only: compression blurs the cell edges
    for bit in range(CLOCK_BITS):
        x0 = bit * CLOCK_CELL_WIDTH
        cell = frame[CLOCK_TOP + margin : VIDEO_HEIGHT - margin, x0 + margin : x0 + CLOCK_CELL_WIDTH - margin]
        index = (index << 1) | int(cell.mean() > (CLOCK_ON + CLOCK_OFF) / 2)
    return index


def tone(n: int, frequency: float, rate: int = SAMPLE_RATE, loudness: float = 1.0, glide: float = 0.0,
         harmonics: int = 1) -> np.ndarray:
    """A raised-cosine-enveloped sine of ``n`` samples (float64, peak ``loudness`` x
    :data:`TONE_AMPLITUDE` for a pure tone); with ``glide`` its pitch moves linearly from
    ``frequency x (1 - glide/2)`` to ``frequency x (1 + glide/2)``; with ``harmonics`` H > 1 it is
    ``sum_{h=1..H} sin(h phase) / h`` (a voice-like, sawtooth-ish spectrum)."""
    envelope = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / max(n - 1, 1))
    if glide:
        instantaneous = frequency * (1.0 + glide * (np.arange(n) / max(n - 1, 1) - 0.5))
        phase = 2 * np.pi * np.cumsum(instantaneous) / rate
    else:
        phase = 2 * np.pi * frequency * np.arange(n) / rate
    wave = np.sin(phase)
    for h in range(2, harmonics + 1):
        wave += np.sin(h * phase) / h
    return loudness * TONE_AMPLITUDE * envelope * wave


def wav_bytes(samples: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """A canonical 44-byte-header PCM wav of int16 ``samples`` (``(n,)`` mono or ``(n, channels)``).

    Written by hand rather than with soundfile, whose per-file flush dominated writing the
    ~10k utterance wavs of a structure corpus.
    """
    if samples.dtype != np.int16:
        raise TypeError(f"expected int16 samples, got {samples.dtype}")
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    data = np.ascontiguousarray(samples, dtype="<i2").tobytes()
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + len(data), b"WAVE",
        b"fmt ", 16, 1, channels, rate, rate * channels * 2, channels * 2, 16,
        b"data", len(data),
    )
    return header + data


def write_wav(path: str | Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> int:
    """Write int16 ``samples`` as a 16-bit PCM wav; returns the bytes written."""
    data = wav_bytes(samples, rate)
    Path(path).write_bytes(data)
    return len(data)


def _yuv_picture(discs: tuple[FaceDisc, ...] = ()) -> np.ndarray:
    """:func:`base_frame` as a packed yuv420p array ``(720, 720)`` with a neutral-chroma clock.

    Converting RGB to YUV is most of the cost of encoding, so it is done once per set of discs
    on screen; the clock is then drawn in the luma plane only (limited range: 235 white, 16 black).
    """
    import av

    yuv = av.VideoFrame.from_ndarray(base_frame(discs), format="rgb24").reformat(format="yuv420p").to_ndarray().copy()
    chroma_top = VIDEO_HEIGHT + CLOCK_TOP // 4  # U then V: each (240, 360), packed as (120, 720) rows
    yuv[CLOCK_TOP:VIDEO_HEIGHT] = _LUMA_OFF
    yuv[chroma_top : VIDEO_HEIGHT + VIDEO_HEIGHT // 4] = 128
    yuv[VIDEO_HEIGHT + VIDEO_HEIGHT // 4 + CLOCK_TOP // 4 :] = 128
    return yuv


_LUMA_ON, _LUMA_OFF = 235, 16


def _draw_luma_clock(yuv: np.ndarray, index: int) -> None:
    for bit in range(CLOCK_BITS):
        on = (index >> (CLOCK_BITS - 1 - bit)) & 1
        x0 = bit * CLOCK_CELL_WIDTH
        yuv[CLOCK_TOP:VIDEO_HEIGHT, x0 : x0 + CLOCK_CELL_WIDTH] = _LUMA_ON if on else _LUMA_OFF


def write_dialogue_avi(path: str | Path, stereo: np.ndarray, rate: int = SAMPLE_RATE,
                       discs: tuple[FaceDisc, ...] = ()) -> int:
    """Encode the split-screen video with ``stereo`` ``(n, 2)`` int16 as its audio track, and
    each of ``discs`` on the frames whose time ``index / fps`` lies in its span.

    The video lasts as long as the audio (``round(n / rate * fps)`` frames). Returns the number
    of frames. Audio is muxed second by second between the video frames so the file interleaves.
    """
    import av

    if stereo.ndim != 2 or stereo.shape[1] != 2 or stereo.dtype != np.int16:
        raise ValueError(f"expected (n, 2) int16 stereo samples, got {stereo.shape} {stereo.dtype}")
    frames = frame_count(len(stereo) / rate)
    pictures: dict[tuple[FaceDisc, ...], np.ndarray] = {}
    with av.open(str(path), "w", format="avi") as container:
        video = container.add_stream(VIDEO_CODEC, rate=VIDEO_FPS)
        video.width, video.height, video.pix_fmt = VIDEO_WIDTH, VIDEO_HEIGHT, "yuv420p"
        video.codec_context.bit_rate = VIDEO_BIT_RATE
        video.codec_context.gop_size = KEYFRAME_INTERVAL
        audio = container.add_stream(AUDIO_CODEC, rate=rate, layout="stereo")
        audio_sent = 0
        for index in range(frames):
            time_s = float(index / VIDEO_FPS)
            shown = tuple(d for d in discs if d.start_s <= time_s < d.end_s)
            if shown not in pictures:
                pictures[shown] = _yuv_picture(shown)
            picture = pictures[shown]
            _draw_luma_clock(picture, index)
            for packet in video.encode(av.VideoFrame.from_ndarray(picture, format="yuv420p")):
                container.mux(packet)
            due = min(len(stereo), int(round((index + 1) / VIDEO_FPS * rate)))
            if due - audio_sent >= rate:
                audio_sent = _mux_audio(container, audio, stereo, audio_sent, due, rate)
        _mux_audio(container, audio, stereo, audio_sent, len(stereo), rate)
        for packet in video.encode():
            container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    return frames


def _mux_audio(container, stream, stereo: np.ndarray, start: int, stop: int, rate: int) -> int:
    import av

    if stop <= start:
        return start
    chunk = np.ascontiguousarray(stereo[start:stop]).reshape(1, -1)  # packed s16: L R L R ...
    frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
    frame.sample_rate = rate
    frame.pts = start
    for packet in stream.encode(frame):
        container.mux(packet)
    return stop
