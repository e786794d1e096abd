"""Audio: Kaldi fbank in torch, ImageBind's clip layout, wav reading and the AVI fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dgnode.corpus import synth_media
from dgnode.media.config import AudioConfig
from dgnode.media.audio import (
    kaldi_fbank,
    kaldi_window,
    load_utterance_audio,
    mel_filterbank,
    read_video_audio,
    waveform_to_imagebind,
)

RATE = 16000
PAD_VALUE = (0.0 - AudioConfig().mean) / AudioConfig().std  # a padded (zero) fbank cell, normalised


def _signal(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 310 * t) + 0.05 * np.sin(2 * np.pi * 2900 * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def _kaldi_native(signal: np.ndarray, bins: int) -> np.ndarray:
    knf = pytest.importorskip("kaldi_native_fbank")
    options = knf.FbankOptions()
    options.frame_opts.samp_freq = RATE
    options.frame_opts.dither = 0.0
    options.frame_opts.window_type = "hanning"
    options.frame_opts.snip_edges = True
    options.frame_opts.remove_dc_offset = True
    options.frame_opts.preemph_coeff = 0.97
    options.mel_opts.num_bins = bins
    options.mel_opts.low_freq = 20.0
    options.mel_opts.high_freq = 0.0
    options.use_energy = False
    options.htk_compat = True
    fbank = knf.OnlineFbank(options)
    fbank.accept_waveform(RATE, signal.tolist())
    fbank.input_finished()
    return np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])


@pytest.mark.parametrize("bins", [80, 100])
@pytest.mark.parametrize("seconds", [0.3, 1.3719])
def test_fbank_matches_kaldi_native_fbank(bins, seconds):
    signal = _signal(seconds, seed=bins)
    reference = _kaldi_native(signal, bins)
    ours = kaldi_fbank(signal, sample_rate=RATE, num_mel_bins=bins).numpy()
    assert ours.shape == reference.shape == (1 + (len(signal) - 400) // 160, bins)
    assert np.abs(ours - reference).max() < 1e-3


def test_hanning_window_is_kaldis_symmetric_one():
    window = kaldi_window(400).numpy()
    i = np.arange(400)
    np.testing.assert_allclose(window, 0.5 - 0.5 * np.cos(2 * np.pi * i / 399), atol=1e-12)
    assert window[0] == 0.0 and window[-1] == pytest.approx(0.0, abs=1e-15)
    np.testing.assert_allclose(window, window[::-1], atol=1e-12)


def test_mel_filters_cover_20hz_to_nyquist_with_empty_low_bins_at_128():
    filters = mel_filterbank(128, 512, RATE).numpy()
    assert filters.shape == (128, 257)
    assert np.all(filters[:, -1] == 0)  # Nyquist column unused, as in Kaldi
    assert filters[:, 0].sum() == 0  # 0 Hz lies below low_freq = 20 Hz
    # Why the C++ Kaldi refuses 128 bins on 512-point FFTs: some low triangles hold no FFT bin.
    assert (filters.sum(axis=1) == 0).sum() > 0
    assert filters.max() <= 1.0


def test_fbank_of_fewer_samples_than_a_frame_is_empty():
    assert kaldi_fbank(np.zeros(399, np.float32)).shape == (0, 128)


def test_imagebind_audio_clips_are_three_two_second_windows_padded_to_204():
    signal = _signal(3.0)
    clips = waveform_to_imagebind(signal).numpy()
    assert clips.shape == (3, 1, 128, 204) and clips.dtype == np.float32
    # ConstantClipsPerVideoSampler on 3 s: starts 0, 1/3, 2/3 s -> samples 0, 5333, 10666.
    for k, offset in enumerate([0, 5333, 10666]):
        piece = torch.from_numpy(signal[offset : offset + 32000])
        expected = ((kaldi_fbank(piece - piece.mean()).T - (-4.268)) / 9.138).numpy()
        assert expected.shape == (128, 198)
        np.testing.assert_allclose(clips[k, 0, :, :198], expected, atol=1e-5)
        np.testing.assert_allclose(clips[k, 0, :, 198:], PAD_VALUE, atol=1e-6)


def test_short_audio_gives_identical_padded_clips():
    half_second = waveform_to_imagebind(_signal(0.5)).numpy()
    frames = 1 + (8000 - 400) // 160  # 48
    assert np.array_equal(half_second[0], half_second[1]) and np.array_equal(half_second[1], half_second[2])
    np.testing.assert_allclose(half_second[:, :, :, frames:], PAD_VALUE, atol=1e-6)
    assert not np.allclose(half_second[:, :, :, :frames], PAD_VALUE)

    shorter_than_a_frame = waveform_to_imagebind(_signal(0.01)).numpy()
    np.testing.assert_allclose(shorter_than_a_frame, PAD_VALUE, atol=1e-6)

    with pytest.raises(ValueError, match="empty audio segment"):
        waveform_to_imagebind(np.zeros(0, np.float32))


def test_wav_is_read_and_resampled(tmp_path):
    samples = (np.sin(2 * np.pi * 200 * np.arange(8000) / 8000) * 10000).astype(np.int16)
    synth_media.write_wav(tmp_path / "u8k.wav", samples, rate=8000)
    segment = load_utterance_audio(str(tmp_path / "u8k.wav"), None, 0.0, 1.0)
    assert segment.source == "wav" and segment.sample_rate == RATE
    assert segment.waveform.shape == (16000,) and segment.waveform.dtype == np.float32
    assert np.abs(segment.waveform).max() == pytest.approx(10000 / 32768, rel=0.02)


def test_missing_wav_falls_back_to_the_videos_audio_track(dialogue, tmp_path):
    start, end = 1.0, 3.0
    channel = dialogue.stereo[16000:48000, 0]
    synth_media.write_wav(tmp_path / "utt.wav", channel.copy())
    from_wav = load_utterance_audio(str(tmp_path / "utt.wav"), str(dialogue.avi), start, end)
    assert from_wav.source == "wav" and from_wav.notes == []
    np.testing.assert_array_equal(from_wav.waveform, channel / 32768.0)

    missing = tmp_path / "gone.wav"
    from_video = load_utterance_audio(str(missing), str(dialogue.avi), start, end)
    assert from_video.source == "avi"
    assert from_video.notes == [f"{missing}: wav file missing"]
    # The AVI track is the stereo dialogue audio; the fallback is its channel mean.
    expected = dialogue.stereo[16000:48000].astype(np.float64).mean(axis=1) / 32768.0
    assert from_video.waveform.shape == (32000,)
    np.testing.assert_allclose(from_video.waveform, expected, atol=1e-6)
    np.testing.assert_allclose(read_video_audio(dialogue.avi, start, end), expected, atol=1e-6)


def test_unreadable_wav_and_video_fail_naming_both(tmp_path):
    broken_wav = tmp_path / "broken.wav"
    broken_wav.write_bytes(b"RIFF\x00\x00not a wav")
    broken_avi = tmp_path / "broken.avi"
    broken_avi.write_bytes(b"RIFF\x00\x00\x00\x00AVI LIST" + bytes(100))
    with pytest.raises(ValueError) as error:
        load_utterance_audio(str(broken_wav), str(broken_avi), 0.0, 1.0)
    message = str(error.value)
    assert f"{broken_wav}: unreadable wav" in message
    assert f"{broken_avi}: audio fallback failed" in message
    with pytest.raises(ValueError, match="no video to fall back to"):
        load_utterance_audio(str(tmp_path / "none.wav"), None, 0.0, 1.0)


def test_an_mp4_audio_track_is_decoded_over_the_span_only(tmp_path):
    """MELD's clips: AAC in MP4. A span read equals the same samples of the whole track."""
    from dgnode.corpus.meld_synth_media import write_clip

    clip = tmp_path / "clip.mp4"
    write_clip(clip, 12.0, 12.0, 2, 0, 200.0, None, np.random.default_rng(1))
    whole = read_video_audio(clip, 0.0, 12.0)
    span = read_video_audio(clip, 7.25, 9.5)
    assert span.shape == (36000,) and whole.shape == (192000,)
    np.testing.assert_allclose(span, whole[116000:152000], atol=1e-6)
    segment = load_utterance_audio(None, str(clip), 7.25, 9.5)
    assert segment.source == "avi" and segment.notes == []  # no wav expected: nothing to explain
    with pytest.raises(ValueError, match=r"audio track has 12\.\d+ s; segment \[20\.000, 21\.000\] s is outside it"):
        read_video_audio(clip, 20.0, 21.0)
