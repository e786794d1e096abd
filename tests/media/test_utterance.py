"""The CPU stage: manifest rows -> ImageBind inputs with one error string per modality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dgnode.corpus import synth_media
from dgnode.media.config import MediaConfig
from dgnode.media.utterance import preprocess_batch


@pytest.fixture()
def rows(dialogue, tmp_path) -> pd.DataFrame:
    wav = tmp_path / "Ses01F_impro01_F000.wav"
    synth_media.write_wav(wav, dialogue.stereo[16000:48000, 0].copy())
    broken_avi = tmp_path / "broken.avi"
    broken_avi.write_bytes(dialogue.avi.read_bytes()[:2000])
    avi = str(dialogue.avi)
    return pd.DataFrame(
        [
            ("Ses01F_impro01_F000", 1.0, 3.0, "left", "Excuse me. [LAUGHTER]", str(wav), avi),
            ("Ses01F_impro01_M001", 5.0, 5.6, "right", "Do you have your forms?", str(tmp_path / "missing.wav"), avi),
            ("Ses01F_impro01_F002", 6.0, 7.0, "left", None, str(wav), str(broken_avi)),
            ("Ses01F_impro01_M003", 7.0, 8.0, "right", "Yes.", str(tmp_path / "missing.wav"), None),
        ],
        columns=["utt_id", "start_s", "end_s", "speaker_side", "text", "wav_path", "video_path"],
    )


def test_each_modality_gets_inputs_or_an_error_and_the_batch_goes_on(rows):
    out = preprocess_batch(rows, ["text", "audio", "vision"], MediaConfig())
    assert out["utt_id"].tolist() == rows["utt_id"].tolist()
    # Transcripts are cleaned here and tokenized by the embedding actor.
    assert out["text"].tolist() == ["Excuse me.", "Do you have your forms?", "", "Yes."]
    assert out["audio"].shape == (4, 3, 1, 128, 204) and out["audio"].dtype == np.float32
    assert out["vision"].shape == (4, 15, 3, 2, 224, 224) and out["vision"].dtype == np.float16

    assert out["error_text"].tolist() == ["", "", "no transcript in the manifest", ""]
    assert out["error_audio"][:3].tolist() == ["", "", ""]
    assert "missing.wav: wav file missing" in out["error_audio"][3] and "no video to fall back to" in out["error_audio"][3]
    assert out["audio_source"].tolist() == ["wav", "avi", "wav", ""]
    assert out["error_vision"][:2].tolist() == ["", ""]
    assert out["error_vision"][2].startswith(f"{rows.video_path[2]}: unreadable video")
    assert out["error_vision"][3] == "no video path in the manifest"

    # Good rows: frames inside their spans; failed rows: -1 and zeros, never garbage.
    for i in (0, 1):
        times = out["frame_times"][i]
        assert np.all(times >= rows.start_s[i] - 1e-9) and np.all(times < rows.end_s[i])
        assert out["vision"][i].any()
    assert np.all(out["frame_indices"][2:] == -1) and not out["vision"][2:].any()
    assert not out["audio"][3].any()
    assert np.all(out["seconds_vision"] >= 0) and out["seconds_vision"][:2].min() > 0


def test_only_requested_modalities_are_computed(rows):
    out = preprocess_batch(rows, ["text"], MediaConfig())
    assert set(out) == {"utt_id", "text", "error_text", "seconds_text"}


def test_short_and_past_the_end_segments_never_crash(dialogue, tmp_path):
    avi = str(dialogue.avi)  # 10 s, 300 frames
    rows = pd.DataFrame(
        [
            ("short", 2.0, 2.05, "left", "Oh.", None, avi),  # 50 ms: one frame, padded audio
            ("runs_past_end", 9.2, 12.0, "right", "Bye.", None, avi),  # clamped to the last frame
            ("after_end", 10.5, 11.5, "left", "Gone.", None, avi),  # nothing to show: an error row
        ],
        columns=["utt_id", "start_s", "end_s", "speaker_side", "text", "wav_path", "video_path"],
    )
    out = preprocess_batch(rows, ["text", "audio", "vision"], MediaConfig())
    assert out["error_vision"][:2].tolist() == ["", ""]
    assert out["frame_indices"][0].tolist() == [60, 61] * 5  # frames 60, 61 (2.002 s, 2.035 s) lie in the span
    assert out["frame_indices"][1].max() == 299 and out["vision"][1].any()
    assert "starts after the video's last frame" in out["error_vision"][2]
    # Audio comes from the AVI (no wavs): the short one is padded, the one past the end is cut.
    assert out["error_audio"][:2].tolist() == ["", ""] and out["audio_source"][:2].tolist() == ["avi", "avi"]
    assert "outside it" in out["error_audio"][2]
