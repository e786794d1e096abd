"""Utterance audio -> ImageBind's audio input ``(clips, 1, mel_bins, target_length)``.

Reading: the utterance wav (soundfile); when it is missing or unreadable (or the manifest has
none, as MELD's), the segment ``[start_s, end_s]`` of the video's audio track (the dialogue AVI,
or MELD's per-utterance MP4), decoded by PyAV over the span only and mixed to mono. Either is
resampled to 16 kHz with soxr.

Features: ImageBind computes a Kaldi-compatible log-mel filterbank through torchaudio
(``torchaudio.compliance.kaldi.fbank``). torchaudio is not usable here (built against another
torch) and the C++ Kaldi and kaldi-native-fbank refuse 128 mel bins on 25 ms windows ("num mel
bins too large": the lowest triangles hold no FFT bin), so :func:`kaldi_fbank` re-implements
Kaldi's ``FbankComputer`` in torch for the options ImageBind uses:

* frames of ``L = 400`` samples (25 ms) every ``S = 160`` samples (10 ms), ``snip_edges``
  (Kaldi's default): ``1 + (n - L) // S`` frames, none when ``n < L``;
* per frame: remove the DC offset, pre-emphasis ``x[i] - 0.97 x[i-1]`` (``x[-1] = x[0]``),
  Kaldi's "hanning" window ``w[i] = 0.5 - 0.5 cos(2 pi i / (L - 1))`` (symmetric, unlike
  ``torch.hann_window``'s periodic default), zero-padded to the next power of two (512);
* power spectrum ``|FFT|^2``, triangular filters equally spaced on the HTK mel scale
  ``mel(f) = 1127 ln(1 + f / 700)`` between 20 Hz and Nyquist, over FFT bins ``0..255``;
* ``log(max(energy, eps))`` with ``eps`` the float32 machine epsilon; no dither, no energy
  coefficient (so ``htk_compat`` changes nothing).

Per clip (see :mod:`dgnode.media.clips`) ImageBind removes the clip's mean first, then pads or
cuts the ``(mel_bins, frames)`` matrix to ``target_length`` frames with zeros, then normalises
with a fixed mean and std.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from dgnode.media.clips import clip_timepoints
from dgnode.media.config import AudioConfig
from dgnode.media.fetch import MediaCache

__all__ = [
    "AudioSegment", "FLOAT32_EPS", "kaldi_fbank", "kaldi_window", "load_utterance_audio",
    "mel_filterbank", "mel_scale", "read_video_audio", "read_wav", "resample", "waveform_to_imagebind",
]

FLOAT32_EPS = float(np.finfo(np.float32).eps)


@dataclass
class AudioSegment:
    """A mono waveform at ``sample_rate`` and where it came from."""

    waveform: np.ndarray  # (n,) float32 in [-1, 1]
    sample_rate: int
    source: str  # "wav", or "avi": the audio track of the video file (an AVI, or MELD's MP4 clip)
    notes: list[str] = field(default_factory=list)  # why the wav was not used, when it was not


# -- filterbank ------------------------------------------------------------------------------
def kaldi_window(length: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Kaldi's "hanning" window: ``0.5 - 0.5 cos(2 pi i / (length - 1))`` (symmetric)."""
    return torch.hann_window(length, periodic=False, dtype=dtype)


def mel_scale(freq: torch.Tensor | float) -> torch.Tensor | float:
    """HTK mel scale ``1127 ln(1 + f / 700)`` (Kaldi's ``MelBanks::MelScale``)."""
    if isinstance(freq, torch.Tensor):
        return 1127.0 * torch.log1p(freq / 700.0)
    return 1127.0 * math.log1p(freq / 700.0)


def mel_filterbank(
    num_mel_bins: int,
    fft_size: int,
    sample_rate: float,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Kaldi's triangular mel filters as a ``(num_mel_bins, fft_size // 2 + 1)`` matrix.

    ``high_freq <= 0`` counts back from Nyquist, as in Kaldi. Filter ``b`` rises from
    ``mel_lo + b d`` to ``mel_lo + (b+1) d`` and falls to ``mel_lo + (b+2) d`` with
    ``d = (mel_hi - mel_lo) / (num_mel_bins + 1)``; the Nyquist column is zero.
    """
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    if not 0.0 <= low_freq < high_freq <= nyquist:
        raise ValueError(f"need 0 <= low_freq < high_freq <= {nyquist}, got {low_freq}, {high_freq}")
    num_fft_bins = fft_size // 2
    mel_low, mel_high = mel_scale(low_freq), mel_scale(high_freq)
    delta = (mel_high - mel_low) / (num_mel_bins + 1)
    bins = torch.arange(num_mel_bins, dtype=dtype).unsqueeze(1)
    left = mel_low + bins * delta
    center = mel_low + (bins + 1.0) * delta
    right = mel_low + (bins + 2.0) * delta
    mel = mel_scale(torch.arange(num_fft_bins, dtype=dtype) * (sample_rate / fft_size)).unsqueeze(0)
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    weights = torch.clamp(torch.minimum(up, down), min=0.0)
    return torch.nn.functional.pad(weights, (0, 1))


def kaldi_fbank(
    waveform: torch.Tensor | np.ndarray,
    sample_rate: int = 16000,
    num_mel_bins: int = 128,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    preemphasis: float = 0.97,
) -> torch.Tensor:
    """Log-mel filterbank of a mono waveform, ``(num_frames, num_mel_bins)`` float32.

    Same numbers as ``torchaudio.compliance.kaldi.fbank(..., window_type="hanning",
    dither=0, use_energy=False, htk_compat=True)`` and Kaldi's ``compute-fbank-feats`` with
    those options (see the module docstring); computed in float64 and returned as float32.
    ``num_frames = 1 + (n - L) // S`` for ``n >= L`` samples, else 0.
    """
    signal = torch.as_tensor(waveform).to(torch.float64).reshape(-1)
    length = int(sample_rate * frame_length_ms * 0.001)
    shift = int(sample_rate * frame_shift_ms * 0.001)
    fft_size = 1 << (length - 1).bit_length()
    if signal.numel() < length:
        return torch.zeros((0, num_mel_bins), dtype=torch.float32)
    frames = signal.unfold(0, length, shift)  # (num_frames, length), a view
    frames = frames - frames.mean(dim=1, keepdim=True)
    previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
    frames = frames - preemphasis * previous
    frames = frames * kaldi_window(length)
    spectrum = torch.fft.rfft(frames, n=fft_size).abs().pow(2)  # (num_frames, fft_size // 2 + 1)
    filters = mel_filterbank(num_mel_bins, fft_size, sample_rate, low_freq, high_freq)
    energies = spectrum @ filters.T
    return torch.clamp(energies, min=FLOAT32_EPS).log().to(torch.float32)


# -- ImageBind input -------------------------------------------------------------------------
def waveform_to_imagebind(waveform: np.ndarray, config: AudioConfig | None = None) -> torch.Tensor:
    """A mono waveform at ``config.sample_rate`` -> ``(clips, 1, mel_bins, target_length)``.

    Raises ``ValueError`` for an empty waveform; a waveform shorter than one clip gives
    identical clips, shorter than one 25 ms frame gives all-padding clips (as ImageBind).
    """
    config = config or AudioConfig()
    signal = torch.as_tensor(np.asarray(waveform, dtype=np.float32)).reshape(-1)
    if signal.numel() == 0:
        raise ValueError("empty audio segment (0 samples)")
    rate = config.sample_rate
    duration = Fraction(signal.numel(), rate)
    clips = []
    for start, end in clip_timepoints(duration, config.clip_duration, config.clips_per_video):
        piece = signal[int(start * rate) : int(end * rate)]
        piece = piece - piece.mean()
        fbank = kaldi_fbank(
            piece,
            sample_rate=rate,
            num_mel_bins=config.num_mel_bins,
            frame_length_ms=config.frame_length_ms,
            frame_shift_ms=config.frame_shift_ms,
            low_freq=config.low_freq,
            preemphasis=config.preemphasis,
        ).T  # (mel_bins, frames)
        missing = config.target_length - fbank.shape[1]
        if missing > 0:
            fbank = torch.nn.functional.pad(fbank, (0, missing))
        else:
            fbank = fbank[:, : config.target_length]
        clips.append(((fbank - config.mean) / config.std).unsqueeze(0))
    return torch.stack(clips)


# -- reading ---------------------------------------------------------------------------------
def resample(waveform: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """soxr's high-quality resampler; returns the input unchanged when the rates agree."""
    if rate_in == rate_out:
        return np.ascontiguousarray(waveform, dtype=np.float32)
    import soxr

    return soxr.resample(np.ascontiguousarray(waveform, dtype=np.float32), rate_in, rate_out).astype(np.float32)


def read_wav(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Whole wav as mono float32 in [-1, 1] at ``sample_rate`` (first channel of a multichannel file,
    as ImageBind's fbank uses channel 0)."""
    import soundfile

    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return resample(data[:, 0], int(rate), sample_rate)


def read_video_audio(path: str | Path, start_s: float, end_s: float, sample_rate: int = 16000) -> np.ndarray:
    """The video's audio track in ``[start_s, end_s)``, mixed to mono (channel mean) and resampled
    to ``sample_rate``.

    Only the span is decoded (PyAV: a seek to the last packet at or before ``start_s`` less a
    quarter second of pre-roll, then frames until ``end_s``, cut to the exact samples by their
    timestamps), so memory follows the span and not the file: a dialogue AVI lasts minutes, and
    some MELD clips are cut minutes too long.
    """
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError("the video has no audio track")
        stream = container.streams.audio[0]
        rate = int(stream.sample_rate or stream.codec_context.sample_rate)
        first, last = max(0, int(round(start_s * rate))), int(round(end_s * rate))
        if start_s > _SEEK_PREROLL_S and stream.time_base:
            container.seek(int((start_s - _SEEK_PREROLL_S) / stream.time_base), stream=stream, backward=True)
        pieces, reached = _decode_span(container, stream, rate, first, last)
        if pieces is None:  # the seek went past the start (some demuxers): read from the beginning
            container.seek(0, stream=stream, backward=True)
            pieces, reached = _decode_span(container, stream, rate, first, last)
    if not pieces:
        raise ValueError(f"audio track has {reached / rate:.3f} s; segment [{start_s:.3f}, {end_s:.3f}] s is outside it")
    return resample(np.concatenate(pieces), rate, sample_rate)


def _decode_span(container, stream, rate: int, first: int, last: int) -> tuple[list[np.ndarray] | None, int]:
    """Mono float32 pieces of samples ``[first, last)`` (``None`` when decoding started after
    ``first``) and the sample index reached."""
    pieces: list[np.ndarray] = []
    position = None
    for frame in container.decode(stream):
        begin = int(round(frame.pts * frame.time_base * rate)) if frame.pts is not None else position
        if begin is None:
            begin = 0
        if position is None and begin > first:
            return None, begin
        mono = _mono(frame)
        position = begin + len(mono)
        if position <= first:
            continue
        if begin >= last:
            break
        pieces.append(mono[max(first - begin, 0) : min(last - begin, len(mono))])
    return pieces, position or 0


# Decoding starts this long before the span: a transform codec (AAC) rebuilds a frame's first
# samples from the frame before (overlap-add), so the first frame after a seek is wrong.
_SEEK_PREROLL_S = 0.25
_SCALE = {"s16": 32768.0, "s16p": 32768.0, "s32": 2.0**31, "s32p": 2.0**31, "u8": 128.0, "u8p": 128.0}


def _mono(frame) -> np.ndarray:
    """A decoded audio frame as mono float32 in [-1, 1]: the mean of its channels."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    name = frame.format.name
    if not frame.format.is_planar:
        data = data.reshape(-1, channels).T  # packed: L R L R ...
    data = data.astype(np.float64)
    if name.startswith("u8"):
        data -= 128.0
    data /= _SCALE.get(name, 1.0)
    return data.mean(axis=0).astype(np.float32)


def load_utterance_audio(
    wav_path: str | None,
    video_path: str | None,
    start_s: float,
    end_s: float,
    sample_rate: int = 16000,
    cache: MediaCache | None = None,
) -> AudioSegment:
    """The utterance's waveform: its wav, else the video's audio for ``[start_s, end_s]``.

    Paths are local or ``s3://`` (fetched through ``cache``, default: the node's). Only a wav
    that does not exist falls back to the video; a wav that exists but cannot be fetched (a
    network error) raises, so that a retry later reads the wav rather than storing the video's
    audio for good. Without a wav path (MELD: the clip's track is the utterance's audio) the
    video is the source and no note says why; its ``source`` is ``avi`` as for every audio read
    from a video file. Raises ``ValueError`` naming both sources when neither can be read.
    """
    cache = cache or MediaCache()
    notes: list[str] = []
    if wav_path:
        try:
            with cache.local(wav_path) as local:
                try:
                    return AudioSegment(read_wav(local, sample_rate), sample_rate, "wav")
                except Exception as error:  # noqa: BLE001 - any decoder error means: try the video
                    notes.append(f"{wav_path}: unreadable wav ({type(error).__name__}: {error})")
        except FileNotFoundError:
            notes.append(f"{wav_path}: wav file missing")
    elif not video_path:
        notes.append("no wav path in the manifest")
    if not video_path:
        raise ValueError("; ".join(notes + ["no video to fall back to"]))
    try:
        with cache.local(video_path) as local:
            waveform = read_video_audio(local, start_s, end_s, sample_rate)
    except Exception as error:  # noqa: BLE001
        notes.append(f"{video_path}: audio fallback failed ({type(error).__name__}: {_first_line(error)})")
        raise ValueError("; ".join(notes)) from None
    return AudioSegment(waveform, sample_rate, "avi", notes)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else ""
