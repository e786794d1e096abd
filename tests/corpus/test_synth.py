"""The synthetic release: raw format, traps, media, determinism."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile

from dgnode.options import ConfigError
from dgnode.corpus.names import APPLEDOUBLE_MAGIC, DS_STORE_MAGIC, UTT_RE
from dgnode.corpus.synth import SynthConfig, synthesize_corpus
from dgnode.corpus.synth_plan import TRAP_DIALOGUES, plan_corpus
from dgnode.corpus.synth_media import (
    CLOCK_TOP,
    HALF_WIDTH,
    LEFT_HALF_RGB,
    RIGHT_HALF_RGB,
    decode_frame_index,
    frame_count,
    utterance_samples,
    write_dialogue_avi,
)


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_mini_corpus_shape(media_corpus):
    ids = [d.dialog_id for d in media_corpus.dialogues]
    assert len(ids) == 6 and set(TRAP_DIALOGUES) <= set(ids)
    assert all(8 <= len(d.utterances) <= 12 for d in media_corpus.dialogues)
    assert all(15 <= d.duration_s <= 50 for d in media_corpus.dialogues)
    codes = media_corpus.code_counts()
    assert set(codes) == {"hap", "sad", "neu", "ang", "exc", "fru", "sur", "fea", "dis", "oth", "xxx"}
    xxx = [u for _, u in media_corpus.utterances() if u.code == "xxx"]
    assert {u.majority for u in xxx} >= {"Happiness", None}
    assert any(u.majority not in ("Happiness", None) for u in xxx)
    assert media_corpus.release_dir == media_corpus.out_dir / "IEMOCAP_full_release"


def test_emo_evaluation_layout(media_corpus):
    dialogue = media_corpus.dialogues[0]
    path = media_corpus.session_dir(dialogue.session) / "dialog" / "EmoEvaluation" / f"{dialogue.dialog_id}.txt"
    lines = path.read_text().split("\n")
    assert lines[:2] == ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    summaries = [line for line in lines if line.startswith("[")]
    assert len(summaries) == len(dialogue.utterances)
    summary_re = re.compile(r"^\[(\d+\.\d{4}) - (\d+\.\d{4})\]\t(\S+)\t(\w{3})\t\[\d\.\d{4}, \d\.\d{4}, \d\.\d{4}\]$")
    parsed = [summary_re.match(s).groups() for s in summaries]
    letters = [utt[-4] for _, _, utt, _ in parsed]
    assert letters == sorted(letters)  # F blocks first, then M
    starts = [float(start) for start, *_ in parsed]
    assert starts != sorted(starts)  # hence not chronological
    assert all(not re.match(r"^0\d", start) for start, *_ in parsed)  # no zero padding here
    # Every block ends with a blank line; an empty dom exists; the subfolders exist.
    for index, line in enumerate(lines):
        if line.startswith("[") and index > 2:
            assert lines[index - 1] == ""
    assert any(re.match(r"^A-\w+:\tval \d; act \d; dom  ;\t\(\)$", line) for line in lines)
    assert all(re.match(r"^C-(E\d|[FM]1):\t(\w+; )*\w+;\t\(\w*\)$", line) for line in lines if line.startswith("C-"))
    emo_dir = path.parent
    assert sorted(p.name for p in emo_dir.iterdir() if p.is_dir()) == ["Attribute", "Categorical", "Self-evaluation"]
    assert all(any(folder.iterdir()) for folder in emo_dir.iterdir() if folder.is_dir())


def test_transcription_traps(media_corpus):
    dialogue = media_corpus.dialogues[0]
    path = media_corpus.session_dir(dialogue.session) / "dialog" / "transcriptions" / f"{dialogue.dialog_id}.txt"
    lines = path.read_text().splitlines()
    line_re = re.compile(r"^(\S+) \[(\d{3}\.\d{4})-(\d{3}\.\d{4})\]: (.*)$")
    matches = [line_re.match(line) for line in lines]
    utterance_lines = [m for m in matches if m and UTT_RE.match(m.group(1))]
    assert len(utterance_lines) == len(dialogue.utterances)
    starts = [float(m.group(2)) for m in utterance_lines]
    assert starts != sorted(starts)  # out of order
    spans = sorted((float(m.group(2)), float(m.group(3))) for m in utterance_lines)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:]))  # overlapping speech
    assert sum(1 for m in matches if m and "XX" in m.group(1)) == 1
    assert sum(1 for m in matches if m is None) == 1  # the comment line
    assert any("[LAUGHTER]" in m.group(4) for m in utterance_lines)


def test_encoding_traps(media_corpus):
    by_id = {d.dialog_id: d for d in media_corpus.dialogues}
    transcription = media_corpus.session_dir(1) / "dialog" / "transcriptions" / "Ses01M_impro01.txt"
    raw = transcription.read_bytes()
    assert b"\r\n" in raw and b"caf\xe9" in raw  # CRLF, cp1252
    emo = media_corpus.session_dir(3) / "dialog" / "EmoEvaluation" / "Ses03M_impro05a.txt"
    assert emo.read_bytes().count(b"\r\n") == emo.read_bytes().count(b"\n")
    assert by_id["Ses01M_impro01"].transcription_encoding == "cp1252"


def test_wdseg_traps(media_corpus):
    dialogue = media_corpus.dialogues[0]
    with_alignment = [u for u in dialogue.utterances if u.has_wdseg]
    assert len(with_alignment) == len(dialogue.utterances) - 1
    missing = [u for u in dialogue.utterances if not u.has_wdseg][0]
    assert not media_corpus.wdseg_path(dialogue, missing).exists()
    texts = [media_corpus.wdseg_path(dialogue, u).read_text() for u in with_alignment]
    joined = "".join(texts)
    assert re.search(r"\t +\d+ +\d+ +-\d+ [A-Z]+\(2\)\n", joined)
    assert "<sil>" in joined and "++LAUGHTER++" in joined
    for u, text in zip(with_alignment, texts):
        lines = text.splitlines()
        assert lines[0] == "\t SFrm  EFrm    SegAScr Word"
        assert re.match(r"^ Total score: +-\d+$", lines[-1])
        frames = [tuple(map(int, line.split()[:2])) for line in lines[1:-1]]
        assert frames[0][0] == 0 and frames[-1][1] == u.samples // 160 - 1
        assert all(b[0] == a[1] + 1 for a, b in zip(frames, frames[1:]))  # contiguous


def test_utterance_wavs_have_exact_lengths_and_come_from_the_dialogue_wav(media_corpus):
    for dialogue in media_corpus.dialogues[:3]:
        stereo, rate = soundfile.read(media_corpus.dialogue_wav_path(dialogue), dtype="int16")
        assert rate == 16000 and stereo.shape == (round(dialogue.duration_s * 16000), 2)
        for u in dialogue.utterances:
            info = soundfile.info(media_corpus.wav_path(dialogue, u))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            assert info.frames == round((u.end_s - u.start_s) * 16000) == utterance_samples(u.start_s, u.end_s)
            samples, _ = soundfile.read(media_corpus.wav_path(dialogue, u), dtype="int16")
            channel = 0 if u.speaker_letter == dialogue.mocap_letter else 1
            first = round(u.start_s * 16000)
            assert np.array_equal(samples, stereo[first : first + info.frames, channel])


def test_avi_is_mpeg4_720x480_30fps_with_audio_and_identifiable_halves(media_corpus):
    import av
    import decord

    dialogue = media_corpus.dialogues[0]
    path = media_corpus.video_path(dialogue)
    assert path.read_bytes()[:4] == b"RIFF" and path.read_bytes()[8:12] == b"AVI "
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.name, video.width, video.height) == ("mpeg4", 720, 480)
        assert float(video.average_rate) == pytest.approx(29.97, abs=0.01)
        assert (audio.codec_context.name, audio.rate, audio.channels) == ("pcm_s16le", 16000, 2)
        track = np.concatenate([frame.to_ndarray().reshape(-1, 2) for frame in container.decode(audio=0)])
    stereo, _ = soundfile.read(media_corpus.dialogue_wav_path(dialogue), dtype="int16")
    assert np.array_equal(track, stereo)

    reader = decord.VideoReader(str(path))
    assert len(reader) == frame_count(dialogue.duration_s)
    assert reader.get_avg_fps() == pytest.approx(30000 / 1001)
    indices = [0, 1, 29, 30, 31, len(reader) // 2, len(reader) - 1]
    frames = reader.get_batch(indices).asnumpy()
    assert frames.shape == (len(indices), 480, 720, 3)
    for index, frame in zip(indices, frames):
        left = frame[:CLOCK_TOP, :HALF_WIDTH].reshape(-1, 3).mean(0)
        right = frame[:CLOCK_TOP, HALF_WIDTH:].reshape(-1, 3).mean(0)
        assert np.abs(left - LEFT_HALF_RGB).max() < 4
        assert np.abs(right - RIGHT_HALF_RGB).max() < 4
        assert decode_frame_index(frame) == index


def test_avi_encoding_is_deterministic(scratch_dir):
    stereo = (np.arange(16000 * 2 * 2, dtype=np.int64).reshape(-1, 2) % 2000 - 1000).astype(np.int16)
    assert write_dialogue_avi(scratch_dir / "a.avi", stereo) == write_dialogue_avi(scratch_dir / "b.avi", stereo) == 60
    assert (scratch_dir / "a.avi").read_bytes() == (scratch_dir / "b.avi").read_bytes()


def test_macos_junk_is_real_junk(media_corpus):
    assert len(media_corpus.junk_paths) == 8
    for path in media_corpus.junk_paths:
        data = path.read_bytes()
        if path.name == ".DS_Store":
            assert data[:8] == DS_STORE_MAGIC
        else:
            assert path.name.startswith("._") and data[:8] == APPLEDOUBLE_MAGIC and len(data) == 4096
    folders = {p.parent for p in media_corpus.junk_paths}
    assert len(folders) == 6
    assert (media_corpus.out_dir / "__MACOSX" / "IEMOCAP_full_release" / "Session1").is_dir()


def test_determinism_for_a_seed(scratch_dir):
    first = synthesize_corpus(scratch_dir / "a", SynthConfig(seed=7, video=False))
    second = synthesize_corpus(scratch_dir / "b", SynthConfig(seed=7, video=False))
    synthesize_corpus(scratch_dir / "c", SynthConfig(seed=8, video=False))
    digest_a, digest_b, digest_c = (_tree_digest(scratch_dir / n) for n in "abc")
    assert digest_a == digest_b
    assert digest_a != digest_c
    assert first.expected_manifest().drop(columns=["wav_path", "wdseg_path"]).equals(
        second.expected_manifest().drop(columns=["wav_path", "wdseg_path"]))


def test_long_dialogue_option():
    dialogues = plan_corpus(SynthConfig(dialogue_seconds=300, dialogs=5))
    assert [d.duration_s for d in dialogues] == [300] * 5
    assert all(d.utterances[-1].end_s < 300 and len(d.utterances) > 60 for d in dialogues)


def test_config_validation():
    with pytest.raises(ConfigError, match="dialogs: expected 5..151"):
        SynthConfig(dialogs=4)
    with pytest.raises(ConfigError, match="leave dialogs unset"):
        SynthConfig(structure="x.json", dialogs=10)
    with pytest.raises(ConfigError, match="utterance_seconds"):
        SynthConfig(utterance_seconds=(0.01, 1.0))
