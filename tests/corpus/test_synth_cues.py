"""Emotion cues of the synthetic corpus: documented, deterministic, noisy, switchable, and in the files."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
import soundfile

from dgnode.corpus import synth_cues
from dgnode.corpus.labels import MERC6_LABELS
from dgnode.corpus.synth import SynthConfig, synthesize_corpus
from dgnode.corpus.synth_cues import CONFUSION, CUE_TABLE, DROPOUT, NEIGHBOUR, cue_emotion
from dgnode.corpus.synth_media import FACE_CENTRE, HALF_WIDTH, LEFT_HALF_RGB, RIGHT_HALF_RGB, VIDEO_FPS
from dgnode.corpus.synth_plan import plan_corpus

ALL_CUE_WORDS = {word for profile in CUE_TABLE.values() for word in profile.words}


def _utterances(dialogues):
    return [u for d in dialogues for u in d.utterances]


def _shown(cue, modality):
    """The emotion a modality of ``cue`` shows (None: dropped)."""
    if modality == "vision":
        if cue.face is None:
            return None
        return min(CUE_TABLE, key=lambda e: np.abs(np.subtract(CUE_TABLE[e].face, cue.face)).sum())
    if modality == "audio":
        if (cue.pitch, cue.loudness, cue.glide) == (1.0, 1.0, 0.0):
            return None
        # The glide is exact (only neu and fru share one); loudness tells those two apart.
        return min(CUE_TABLE, key=lambda e: abs(np.log(cue.loudness / CUE_TABLE[e].loudness))
                   + 10 * abs(cue.glide - CUE_TABLE[e].glide))
    if not cue.words:
        return None
    return next(e for e, profile in CUE_TABLE.items() if cue.words[0] in profile.words)


def test_the_cue_table_is_documented_and_covers_the_six_classes():
    assert set(CUE_TABLE) == set(MERC6_LABELS) == set(NEIGHBOUR)
    doc = synth_cues.__doc__
    for emotion, profile in CUE_TABLE.items():
        row = next(line for line in doc.splitlines() if line.startswith(emotion + " "))
        assert all(word in row for word in profile.words), row
        assert f"x{profile.loudness}" in row
    assert len(ALL_CUE_WORDS) == 2 * len(CUE_TABLE)
    assert not ALL_CUE_WORDS & set(" ".join(u.text.lower() for u in _utterances(plan_corpus(SynthConfig(cues=False)))).split())


def test_cues_are_deterministic_and_switch_off_without_changing_anything_else():
    first, again = plan_corpus(SynthConfig(seed=3, dialogs=8)), plan_corpus(SynthConfig(seed=3, dialogs=8))
    plain = plan_corpus(SynthConfig(seed=3, dialogs=8, cues=False))
    assert [u.cue for u in _utterances(first)] == [u.cue for u in _utterances(again)]
    assert all(u.cue is None for u in _utterances(plain))
    for cued, bare in zip(_utterances(first), _utterances(plain), strict=True):
        # Same dialogue: times, speakers, labels, votes; the text differs by the emotion words only.
        assert (cued.utt_id, cued.start_s, cued.end_s, cued.code, cued.votes, cued.majority) == (
            bare.utt_id, bare.start_s, bare.end_s, bare.code, bare.votes, bare.majority)
        tokens = [t.removesuffix("(2)") for t in cued.tokens]
        assert Counter(tokens) - Counter(w.upper() for w in cued.cue.words) == Counter(bare.tokens)
        assert Counter(cued.text.lower().rstrip(".?!").split()) - Counter(bare.text.lower().rstrip(".?!").split()) == Counter(cued.cue.words)


def test_every_utterance_shows_its_own_emotion_or_none():
    for u in _utterances(plan_corpus(SynthConfig(seed=0, dialogs=12))):
        assert u.cue.emotion == cue_emotion(u.code, u.majority)
        if u.code in ("sur", "fea", "dis", "oth") or (u.code == "xxx" and u.majority is None):
            assert u.cue.emotion is None and u.cue.face is None and not u.cue.words
        assert all(word in CUE_TABLE[_shown(u.cue, "text")].words for word in u.cue.words)


def test_noise_drops_and_confuses_each_modality_so_none_is_enough():
    cued = [u.cue for u in _utterances(plan_corpus(SynthConfig(seed=1, dialogs=80))) if u.cue.emotion]
    assert len(cued) > 600
    for modality in ("vision", "audio", "text"):
        shown = [_shown(cue, modality) for cue in cued]
        dropped = np.mean([s is None for s in shown])
        present = [(s, cue.emotion) for s, cue in zip(shown, cued) if s is not None]
        confused = np.mean([s == NEIGHBOUR[e] for s, e in present])
        assert abs(dropped - DROPOUT[modality]) < 0.05, (modality, dropped)
        assert abs(confused - CONFUSION) < 0.05, (modality, confused)
        # Read back from jittered values (audio: loudness, where neu and fru share a glide; vision:
        # the nearest offset), a few land on another emotion; words are exact.
        floor = {"audio": 0.97, "vision": 0.99, "text": 1.0}[modality]
        assert np.mean([s in (e, NEIGHBOUR[e]) for s, e in present]) >= floor
        # One modality alone shows the truth for ~63% of utterances; all three together leave an
        # utterance without any true cue far less often (~5%).
        assert np.mean([s == cue.emotion for s, cue in zip(shown, cued)]) < 0.7
    none_true = np.mean([all(_shown(cue, m) != cue.emotion for m in ("vision", "audio", "text")) for cue in cued])
    assert none_true < 0.08


def test_dialogue_moods_make_neighbouring_labels_agree():
    dialogues = plan_corpus(SynthConfig(seed=2, dialogs=80))
    pairs = [(a.code, b.code) for d in dialogues for a, b in zip(d.utterances, d.utterances[1:])
             if a.code in CUE_TABLE and b.code in CUE_TABLE]
    agree = np.mean([a == b for a, b in pairs])
    counts = Counter(u.code for u in _utterances(dialogues) if u.code in CUE_TABLE)
    chance = sum((n / sum(counts.values())) ** 2 for n in counts.values())
    assert agree > chance + 0.25, (agree, chance)
    assert set(counts) == set(MERC6_LABELS)


def test_the_default_mini_corpus_tests_every_class():
    assert _test_split_labels(SynthConfig()) == set(range(len(MERC6_LABELS)))


def _test_split_labels(config: SynthConfig) -> set[int]:
    from dgnode.corpus.labels import get_scheme
    from dgnode.corpus.splits import standard_split

    scheme = get_scheme("merc6")
    return {scheme.label_of(u.code, u.majority) for d in plan_corpus(config) for u in d.utterances
            if standard_split(d.dialog_id, d.session) == "test"} - {None}


def test_the_cues_are_in_the_written_text_audio_and_video(media_corpus):
    import decord

    dialogues = media_corpus.dialogues
    # Text: the transcript line (the manifest text) holds the emotion words.
    expected = media_corpus.expected_manifest().set_index("utt_id")
    worded = [u for _, u in media_corpus.utterances() if u.cue.words]
    assert worded
    for u in worded:
        said = [t.strip(".?!,") for t in expected.loc[u.utt_id, "text"].lower().split()]
        assert Counter(said) >= Counter(u.cue.words), (u.utt_id, said, u.cue.words)
    # Audio: the utterance wav's loudness follows the cue's.
    rms, loudness = [], []
    for dialogue, u in media_corpus.utterances():
        samples, _ = soundfile.read(media_corpus.wav_path(dialogue, u), dtype="float64")
        rms.append(np.sqrt(np.mean(samples**2)))
        loudness.append(u.cue.loudness)
    assert np.corrcoef(np.log(rms), np.log(loudness))[0, 1] > 0.99
    # Video: mid-utterance, the speaker's half shows the face disc of the cue's colour.
    checked = 0
    for dialogue in dialogues[:3]:
        reader = decord.VideoReader(str(media_corpus.video_path(dialogue)))
        for u in dialogue.utterances:
            middle = (u.start_s + u.end_s) / 2
            others = [o for o in dialogue.utterances if o is not u and o.start_s <= middle < o.end_s]
            if u.cue.face is None or others:
                continue
            frame = reader[int(middle * float(VIDEO_FPS))].asnumpy().astype(float)
            left = u.speaker_letter == dialogue.mocap_letter
            x = FACE_CENTRE[0] + (0 if left else HALF_WIDTH)
            y = FACE_CENTRE[1]
            patch = frame[y - 8 : y + 8, x - 8 : x + 8].reshape(-1, 3).mean(0)
            base = np.asarray(LEFT_HALF_RGB if left else RIGHT_HALF_RGB)
            np.testing.assert_allclose(patch, np.clip(base + u.cue.face, 0, 255), atol=8)
            silent_x = FACE_CENTRE[0] + (HALF_WIDTH if left else 0)
            silent = frame[y - 8 : y + 8, silent_x - 8 : silent_x + 8].reshape(-1, 3).mean(0)
            np.testing.assert_allclose(silent, RIGHT_HALF_RGB if left else LEFT_HALF_RGB, atol=6)
            checked += 1
    assert checked >= 5


def test_without_cues_nothing_in_the_media_depends_on_the_label(scratch_dir):
    summary = synthesize_corpus(scratch_dir / "plain", dataclasses.replace(SynthConfig(seed=0), video=False, cues=False))
    rms_by_label: dict[str, list[float]] = {}
    for dialogue, u in summary.utterances():
        samples, _ = soundfile.read(summary.wav_path(dialogue, u), dtype="float64")
        rms_by_label.setdefault(u.code, []).append(float(np.sqrt(np.mean(samples**2))))
        assert not ALL_CUE_WORDS & set(u.text.lower().rstrip(".?!").split())
    means = [np.mean(v) for v in rms_by_label.values()]
    assert max(means) / min(means) < 1.15  # one plain voice for every label


@pytest.mark.parametrize("emotion", sorted(CUE_TABLE))
def test_cue_emotion_of_raters_majorities(emotion):
    from dgnode.corpus.labels import CODE_TO_CATEGORY

    assert cue_emotion(emotion, None) == emotion
    assert cue_emotion("xxx", CODE_TO_CATEGORY[emotion]) == emotion
    assert cue_emotion("xxx", None) is None and cue_emotion("sur", "Surprise") is None


def test_required_classes_start_runs_of_the_mood_chain():
    import numpy as np

    rng = np.random.default_rng(0)
    for _ in range(50):
        _, labels = synth_cues.mood_chain(rng, 10, include=("ang", "exc", "fru"))
        assert len(labels) == 10 and {"ang", "exc", "fru"} <= set(labels)
    with pytest.raises(ValueError, match="cannot include"):
        synth_cues.mood_chain(rng, 2, include=("ang", "exc", "fru"))
