from __future__ import annotations

import pytest

from dgnode.corpus.names import (
    DIALOG_RE,
    UTT_RE,
    XX_SEGMENT_RE,
    dialog_of,
    is_hidden_or_junk,
    is_macos_junk_name,
    parse_utterance_id,
    session_of_dialog,
    speaker_of,
    speaker_side_of,
)


@pytest.mark.parametrize(
    "utt_id, dialog, speaker, side",
    [
        ("Ses01F_impro01_F000", "Ses01F_impro01", "Ses01.F", "left"),
        ("Ses01F_impro01_M012", "Ses01F_impro01", "Ses01.M", "right"),
        # The letter after the session is the marker-wearing actor, not the speaker.
        ("Ses02M_script02_2_F007", "Ses02M_script02_2", "Ses02.F", "right"),
        ("Ses02M_script02_2_M007", "Ses02M_script02_2", "Ses02.M", "left"),
        ("Ses03M_impro05a_M001", "Ses03M_impro05a", "Ses03.M", "left"),
        ("Ses03M_impro08b_F020", "Ses03M_impro08b", "Ses03.F", "right"),
        ("Ses05M_script01_1b_F003", "Ses05M_script01_1b", "Ses05.F", "right"),
        ("Ses05M_script01_1_F003", "Ses05M_script01_1", "Ses05.F", "right"),
    ],
)
def test_utterance_id_parts(utt_id, dialog, speaker, side):
    parsed = parse_utterance_id(utt_id)
    assert parsed.dialog_id == dialog == dialog_of(utt_id)
    assert speaker_of(utt_id) == speaker
    assert speaker_side_of(utt_id) == side
    assert (utt_id[-4] == utt_id[5]) == (side == "left")  # the rule of the format notes


def test_1b_ids_are_not_assigned_to_script01_1():
    assert parse_utterance_id("Ses05M_script01_1b_F003").dialog_id == "Ses05M_script01_1b"
    assert "Ses05M_script01_1b_F003".startswith("Ses05M_script01_1")  # why prefix matching is wrong


@pytest.mark.parametrize(
    "bad",
    ["Ses06F_impro01_F000", "Ses01F_impro09_F000", "Ses01F_impro01_X000", "Ses01F_impro01_F00", "Ses01F_impro01_MXX0",
     "Ses01F_script04_1_F000", "ses01F_impro01_F000", "Ses01F_impro01_F000.wav", "._Ses01F_impro01_F000"],
)
def test_invalid_utterance_ids(bad):
    assert parse_utterance_id(bad) is None
    assert UTT_RE.match(bad) is None


def test_dialog_ids_and_sessions():
    assert [bool(DIALOG_RE.match(d)) for d in ("Ses03M_impro05a", "Ses05M_script01_1b", "Ses01F_impro01", "Ses01F_impro01_F000")] == [True, True, True, False]
    assert session_of_dialog("Ses04F_script03_2") == 4
    with pytest.raises(ValueError, match="not an IEMOCAP dialogue id"):
        session_of_dialog("Session4")


def test_xx_segments_and_junk_names():
    assert XX_SEGMENT_RE.match("Ses01F_script01_1_MXX0")
    assert XX_SEGMENT_RE.match("Ses01F_impro01_F000") is None
    assert [is_macos_junk_name(n) for n in (".DS_Store", "._Ses01F_impro01.txt", "__MACOSX", ".git", "Session1")] == [
        True, True, True, False, False]
    assert [is_hidden_or_junk(n) for n in (".git", "__MACOSX", "Ses01F_impro01.txt")] == [True, True, False]
