"""The synthetic MELD release: the raw format (CSV encodings, H.264 + AAC clips), determinism, cues,
and the real structure's counts."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from dgnode.corpus.detect import scan_release
from dgnode.corpus.meld_names import CSV_FILES
from dgnode.corpus.meld_synth_media import CLIP_HEIGHT, CLIP_WIDTH, SKIN_RGB, clip_picture, face_centres, write_clip
from dgnode.corpus.synth import SynthConfig, synthesize_corpus
from dgnode.corpus.synth_cues import UtteranceCue
from dgnode.options import ConfigError


def test_csvs_carry_the_archive_encodings_and_the_same_seed_writes_the_same_bytes(tmp_path):
    config = SynthConfig(dataset="meld", video=False, dialogs=20, seed=3)
    first = synthesize_corpus(tmp_path / "a", config)
    second = synthesize_corpus(tmp_path / "b", config)
    other = synthesize_corpus(tmp_path / "c", SynthConfig(dataset="meld", video=False, dialogs=20, seed=4))
    for name in CSV_FILES.values():
        assert (first.release_dir / name).read_bytes() == (second.release_dir / name).read_bytes()
        assert (first.release_dir / name).read_bytes() != (other.release_dir / name).read_bytes()
    train = (first.release_dir / "train_sent_emo.csv").read_bytes()
    dev = (first.release_dir / "dev_sent_emo.csv").read_bytes()
    assert train.startswith(b"Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,"
                            b"StartTime,EndTime\r\n")
    with pytest.raises(UnicodeDecodeError):
        train.decode("utf-8")  # raw cp1252 bytes (\x92 ...)
    assert any(byte in train for byte in (b"\x92", b"\x85", b"\x93", b"\x96", b"\x97", b"\xa0", b"\x91"))
    assert any(c in dev.decode("utf-8") for c in "\u0085\u0091\u0092\u0093\u0094\u0096\u0097")  # C1 controls
    assert b',"0:' in train and b',"00:' in train  # both hour forms


def test_clips_are_h264_and_aac_with_the_speakers_cue_in_a_full_frame(meld_release):
    import av

    summary = meld_release.summary
    dialogue = next(d for d in summary.dialogues if len(d.cast) >= 2 and d.split == "test" and d.dialogue == 38)
    utterance = next(u for u in dialogue.utterances if u.cue and u.cue.face is not None and u.utterance != 4)
    path = summary.clip_folder("test") / f"dia38_utt{utterance.utterance}.mp4"
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.name, audio.codec_context.name) == ("h264", "aac")
        assert (video.codec_context.width, video.codec_context.height) == (CLIP_WIDTH, CLIP_HEIGHT)
        frame = next(container.decode(video)).to_ndarray(format="rgb24").astype(float)
    speaker = dialogue.cast.index(utterance.speaker)
    for index, (x, y) in enumerate(face_centres(len(dialogue.cast))):
        colour = frame[y - 4:y + 5, x - 4:x + 5].reshape(-1, 3).mean(axis=0)
        expected = np.clip(np.add(SKIN_RGB, utterance.cue.face if index == speaker else (0, 0, 0)), 0, 255)
        assert np.abs(colour - expected).max() < 12, (index, colour, expected)
    # The clip's length is what the summary read back; the voice is louder than the noise floor.
    assert summary.clip_seconds[("test", 38, utterance.utterance)] == pytest.approx(utterance.clip_s, abs=0.05)
    from dgnode.media.audio import read_video_audio

    waveform = read_video_audio(path, 0.0, utterance.clip_s)
    assert np.sqrt(np.mean(waveform**2)) > 5 * (30.0 / 32768)


def test_clip_writing_is_deterministic_and_the_picture_shows_each_cast_member(tmp_path):
    cue = UtteranceCue("joy", (45, 45, -35), 40, 1.2, 1.3, 0.2, ())
    sizes = [write_clip(tmp_path / f"{k}.mp4", 1.0, 1.0, 3, 1, 150.0, cue, np.random.default_rng(7)) for k in range(2)]
    assert sizes[0] == sizes[1] and (tmp_path / "0.mp4").read_bytes() == (tmp_path / "1.mp4").read_bytes()
    picture = clip_picture(4, 2, cue)
    centres = face_centres(4)
    assert [tuple(picture[y, x]) for x, y in centres] == [SKIN_RGB, SKIN_RGB, (215, 175, 75), SKIN_RGB]


def test_the_real_structure_scans_to_the_real_counts(meld_structure_path, tmp_path):
    structure = json.loads(Path(meld_structure_path).read_text())
    summary = synthesize_corpus(tmp_path / "raw", SynthConfig(dataset="meld", structure=str(meld_structure_path),
                                                               video=False))
    scan = scan_release(tmp_path / "raw")  # detected as MELD
    counts = scan.summary()
    assert (counts["dataset"], counts["utterances"], counts["dialogues"], counts["labelled"]) == ("meld", 13708, 1432, 13708)
    assert {s: (c["dialogues"], c["labelled"]) for s, c in counts["splits"].items()} == {
        "train": (1038, 9989), "valid": (114, 1109), "test": (280, 2610)}
    real = Counter(structure["labels"][x] for d in structure["dialogues"].values() for x in d["labels"])
    assert counts["label_counts"] == {name: real[name] for name in structure["labels"]}
    assert counts["label_counts"] == {"neutral": 6436, "surprise": 1636, "fear": 358, "sadness": 1002, "joy": 2308,
                                      "disgust": 361, "anger": 1607}
    assert counts["rejects"]["missing-folder"] == 3 and "malformed-csv-row" not in counts["rejects"]
    # Dialogue ids, split membership, labels and speakers (by first appearance) are the structure's.
    manifest = scan.manifest
    assert set(manifest["dialog_id"]) == set(structure["dialogues"])
    splits = {"train": "train", "valid": "valid", "test": "test"}
    for split, ids in structure["splits"].items():
        assert set(manifest.loc[manifest["split"] == splits[split], "dialog_id"]) == {str(i) for i in ids}
    for dialog_id, group in manifest.groupby("dialog_id"):
        entry = structure["dialogues"][dialog_id]
        assert group["label"].tolist() == entry["labels"]
        first_seen = {name: rank for rank, name in enumerate(dict.fromkeys(group["speaker"]))}
        assert [first_seen[s] for s in group["speaker"]] == [
            {i: r for r, i in enumerate(dict.fromkeys(entry["speakers"]))}[i] for i in entry["speakers"]]
    assert summary.label_counts() == counts["label_counts"]


@pytest.mark.parametrize("overrides, message", [
    ({"dialogs": 5}, "dialogs: expected 9..1432"),
    ({"overlong_seconds": 30.0}, "overlong_seconds: expected more than 35"),
    ({"dialogue_seconds": 60.0}, "dialogue_seconds: only for IEMOCAP"),
    ({"utterance_seconds": (0.5, 45.0)}, "utterance_seconds: expected 0.1 <= min <= max <= 30"),
])
def test_bad_meld_settings_are_one_line_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        SynthConfig(dataset="meld", **overrides)
    with pytest.raises(ConfigError, match="archives: only for a MELD release"):
        SynthConfig(archives=True)


def test_an_iemocap_structure_is_refused_for_meld(iemocap_structure_path, tmp_path):
    from dgnode.errors import InputError

    with pytest.raises(InputError, match="labels must be MELD's"):
        synthesize_corpus(tmp_path / "x", SynthConfig(dataset="meld", structure=str(iemocap_structure_path), video=False))
