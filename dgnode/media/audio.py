"""Utterance audio -> ImageBind's audio input ``(clips, 1, mel_bins, target_length)``.

Reading: the utterance wav (soundfile); when it is missing or unreadable, the segment
``[start_s, end_s]`` of the dialogue AVI's audio track (decord's ``AudioReader``, mixed to mono).
Either is resampled to 16 kHz with soxr.

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
    source: str  # "wav" or "avi"
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
    """The AVI's audio track in ``[start_s, end_s)``, mixed to mono (channel mean for stereo) and
    resampled to ``sample_rate``.

    decord decodes the whole track when the reader opens (a dialogue is minutes long: tens of MB),
    which is acceptable for a fallback path.
    """
    import decord

    native_rate, channels = _audio_stream_format(path)
    reader = decord.AudioReader(str(path), ctx=decord.cpu(0), sample_rate=-1, mono=True)
    total = int(reader.shape[1])
    first = max(0, int(round(start_s * native_rate)))
    last = min(total, int(round(end_s * native_rate)))
    if last <= first:
        raise ValueError(
            f"audio track has {total / native_rate:.3f} s; segment [{start_s:.3f}, {end_s:.3f}] s is outside it"
        )
    samples = reader[first:last].asnumpy()[0]
    if channels == 2:
        # decord (libswresample) downmixes stereo as (L + R) / sqrt(2); the channel mean keeps
        # the level of one microphone, like the utterance wav.
        samples = samples / np.sqrt(2.0)
    return resample(samples, native_rate, sample_rate)


def _audio_stream_format(path: str | Path) -> tuple[int, int]:
    """(sample rate, channels) of the first audio stream, read from the container header."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError("the video has no audio track")
        stream = container.streams.audio[0]
        return int(stream.sample_rate), int(stream.codec_context.channels)


def load_utterance_audio(
    wav_path: str | None,
    video_path: str | None,
    start_s: float,
    end_s: float,
    sample_rate: int = 16000,
    cache: MediaCache | None = None,
) -> AudioSegment:
    """The utterance's waveform: its wav, else the dialogue video's audio for ``[start_s, end_s]``.

    Paths are local or ``s3://`` (fetched through ``cache``, default: the node's). Only a wav
    that does not exist falls back to the video; a wav that exists but cannot be fetched (a
    network error) raises, so that a retry later reads the wav rather than storing the video's
    audio for good. Raises ``ValueError`` naming both sources when neither can be read.
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
    else:
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
