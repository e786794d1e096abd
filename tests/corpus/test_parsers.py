"""The file parsers on literal text, with exact values."""

from __future__ import annotations

import pytest

from dgnode.corpus import rejects as R
from dgnode.corpus.emo_evaluation import parse_emo_evaluation, parse_rater_categories
from dgnode.corpus.labels import SCHEMES, majority_category
from dgnode.corpus.rejects import RejectLog
from dgnode.corpus.splits import hash_valid, known_dialogues, standard_split
from dgnode.corpus.textio import read_lines
from dgnode.corpus.transcriptions import parse_transcription
from dgnode.corpus.wdseg import WdsegError, parse_wdseg, words
from dgnode.errors import InputError

EMO = """% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]
C-E2:\tNeutral;\t()
C-F1:\tNeutral;\t(curious)
A-E3:\tval 3; act 2; dom  2;\t()

[10.0100 - 11.5000]\tSes01F_impro01_F001\txxx\t[3.0000, 3.0000, 3.0000]
C-E1:\tHappiness; Happiness;\t()
C-E2:\tHappiness; Excited;\t()
C-E3:\tNeutral;\t()
A-E1:\tval 4; act 3; dom  ;\t()

[7.5712 - 10.4750]\tSes01F_impro01_M000\tfru\t[2.0000, 3.5000, 3.0000]
C-E2:\tFrustration; Anger;\t(annoyed)
C-E4:\tFrustration;\t()
C-M1:\tOther:bored;\t()
A-E2:\tval 2; act 4; dom  3;\t()

"""


def test_emo_evaluation_blocks_exact():
    log = RejectLog()
    parsed = parse_emo_evaluation(EMO.splitlines(), "x.txt", "Ses01F_impro01", log)
    assert log.rows == []
    assert [(b.utt_id, b.start_s, b.end_s, b.code, b.line) for b in parsed.records] == [
        ("Ses01F_impro01_F000", 6.2901, 8.2357, "neu", 3),
        ("Ses01F_impro01_F001", 10.01, 11.5, "xxx", 8),
        ("Ses01F_impro01_M000", 7.5712, 10.475, "fru", 14),
    ]
    first, xxx, m000 = parsed.records
    assert [(v.rater, v.categories, v.line) for v in first.votes] == [("E2", ("Neutral",), 4), ("F1", ("Neutral",), 5)]
    assert [v.categories for v in xxx.votes] == [("Happiness", "Happiness"), ("Happiness", "Excited"), ("Neutral",)]
    assert xxx.majority == "Happiness"
    assert [v.categories for v in m000.votes] == [("Frustration", "Anger"), ("Frustration",), ("Other",)]
    assert m000.majority == "Frustration"


def test_rater_categories_drop_comments():
    assert parse_rater_categories("Neutral; Anger;\t(curious; tense)") == ("Neutral", "Anger")
    assert parse_rater_categories("\t;\t()") == ()


def test_majority_counts_each_rater_once_per_category():
    assert majority_category([("Happiness", "Happiness"), ("Anger",), ("Anger", "Frustration"), ("Happiness",)]) is None
    assert majority_category([("Happiness",), ("Happiness", "Surprise"), ("Excited",), ("Neutral",)]) == "Happiness"
    assert majority_category([("Neutral",), ("Anger",)]) is None
    assert majority_category([]) is None


def test_label_schemes():
    merc6, raw6, four = SCHEMES["merc6"], SCHEMES["raw6"], SCHEMES["four"]
    assert merc6.label_names == raw6.label_names == ("hap", "sad", "neu", "ang", "exc", "fru")
    assert four.label_names == ("hap", "sad", "neu", "ang")
    codes = ["hap", "sad", "neu", "ang", "exc", "fru", "sur", "fea", "dis", "oth", "xxx"]
    assert [merc6.label_of(c) for c in codes] == [0, 1, 2, 3, 4, 5, None, None, None, None, None]
    assert [four.label_of(c) for c in codes] == [0, 1, 2, 3, 0, None, None, None, None, None, None]
    assert merc6.label_of("xxx", "Happiness") == 0
    assert merc6.label_of("xxx", "Neutral") is None
    assert raw6.label_of("xxx", "Happiness") is None
    assert four.label_of("xxx", "Happiness") is None
    assert merc6.label_of("sad", "Happiness") == 1  # the majority only decides xxx


def test_emo_evaluation_rejects_and_keeps_neighbours():
    text = EMO.replace("[6.2901 - 8.2357]\tSes01F_impro01_F000", "[6.2901 8.2357]\tSes01F_impro01_F000")
    text = text.replace("[7.5712 - 10.4750]\tSes01F_impro01_M000\tfru", "[7.5712 - 7.5712]\tSes01F_impro01_M000\tfru")
    text += "[1.0 - 2.0]\tSes01F_impro02_F009\tneu\t[1, 1, 1]\n\n[1.0 - 2.0]\tSes01F_impro01_F001\tneu\t[1, 1, 1]\n\n"
    text += "[1.0 - 2.0]\tSes01F_impro01_F005\tblah\t[1, 1, 1]\n\nC-E1:\tNeutral;\t()\nrandom words\n"
    log = RejectLog()
    parsed = parse_emo_evaluation(text.splitlines(), "x.txt", "Ses01F_impro01", log)
    assert [b.utt_id for b in parsed.records] == ["Ses01F_impro01_F001"]
    assert [(r.reason, r.line, r.utt_id) for r in log.rows] == [
        (R.MALFORMED_SUMMARY_LINE, 3, "Ses01F_impro01_F000"),
        (R.BAD_TIMES, 14, "Ses01F_impro01_M000"),
        (R.UNKNOWN_DIALOGUE, 20, "Ses01F_impro02_F009"),
        (R.DUPLICATE_UTTERANCE, 22, "Ses01F_impro01_F001"),
        (R.MALFORMED_SUMMARY_LINE, 24, "Ses01F_impro01_F005"),
        (R.MALFORMED_RATER_LINE, 26, None),
        (R.UNRECOGNISED_LINE, 27, None),
    ]
    assert parsed.dropped_ids == {"Ses01F_impro01_F000", "Ses01F_impro01_M000", "Ses01F_impro02_F009",
                                  "Ses01F_impro01_F005"}


def test_strict_log_raises_with_file_and_line():
    text = EMO.replace("[6.2901 - 8.2357]", "[6.2901 8.2357]")
    with pytest.raises(InputError) as caught:
        parse_emo_evaluation(text.splitlines(), "EmoEvaluation/x.txt", "Ses01F_impro01", RejectLog(strict=True))
    assert str(caught.value).startswith("EmoEvaluation/x.txt:3: malformed-summary-line: expected")
    assert caught.value.line == 3


TRANSCRIPT = """Ses01F_impro01_M000 [007.5712-010.4750]: Do you have your forms?
Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me [LAUGHTER].
Ses01F_impro01_MXX0 [011.0000-012.0000]: [GARBAGE]
M: breathing
Ses01F_impro01_F001 [010.0100-011.5000]:
"""


def test_transcription_lines_exact():
    log = RejectLog()
    parsed = parse_transcription(TRANSCRIPT.splitlines(), "t.txt", "Ses01F_impro01", log)
    assert [(t.utt_id, t.start_s, t.end_s, t.text, t.line) for t in parsed.records] == [
        ("Ses01F_impro01_M000", 7.5712, 10.475, "Do you have your forms?", 1),
        ("Ses01F_impro01_F000", 6.2901, 8.2357, "Excuse me [LAUGHTER].", 2),
        ("Ses01F_impro01_F001", 10.01, 11.5, "", 5),
    ]
    assert [(r.reason, r.line, r.utt_id) for r in log.rows] == [
        (R.XX_SEGMENT, 3, "Ses01F_impro01_MXX0"), (R.COMMENT_LINE, 4, None)]
    # Skips are never errors, even in strict mode.
    parse_transcription(TRANSCRIPT.splitlines(), "t.txt", "Ses01F_impro01", RejectLog(strict=True))


def test_transcription_rejects():
    text = ("Ses01F_impro01_M000 007.5712-010.4750: no brackets\n"
            "Ses01F_impro01_M001 [010.4750-010.4750]: zero length\n"
            "Ses01F_impro03_M001 [010.4750-011.4750]: other dialogue\n"
            "Ses01F_impro01_Q001 [010.4750-011.4750]: bad id\n"
            "Ses01F_impro01_F002 [001.0000-002.0000]: bell \x07 garbage\n"
            "Ses01F_impro01_F003 [001.0000-002.0000]: fine\n"
            "Ses01F_impro01_F003 [001.0000-002.0000]: again\n")
    log = RejectLog()
    parsed = parse_transcription(text.splitlines(), "t.txt", "Ses01F_impro01", log)
    assert [t.utt_id for t in parsed.records] == ["Ses01F_impro01_F003"]
    assert [(r.reason, r.line) for r in log.rows] == [
        (R.MALFORMED_TRANSCRIPTION_LINE, 1), (R.BAD_TIMES, 2), (R.UNKNOWN_DIALOGUE, 3), (R.BAD_UTTERANCE_ID, 4),
        (R.UNDECODABLE, 5), (R.DUPLICATE_UTTERANCE, 7)]
    assert parsed.dropped_ids == {"Ses01F_impro01_M000", "Ses01F_impro01_M001", "Ses01F_impro03_M001",
                                  "Ses01F_impro01_Q001", "Ses01F_impro01_F002"}


WDSEG = """\t SFrm  EFrm    SegAScr Word
\t    0    32     -46548 <s>
\t   33    68    -133219 EXCUSE
\t   69    75     -20000 <sil>
\t   76    88     -99560 ME(2)
\t   89    95     -10000 ++LAUGHTER++
\t   96   193    -163851 </s>
 Total score:     -473178
"""


def test_wdseg_exact(scratch_dir):
    path = scratch_dir / "u.wdseg"
    path.write_text(WDSEG)
    segments = parse_wdseg(path)
    assert [(s.word, s.start_frame, s.end_frame, s.score) for s in segments][1] == ("EXCUSE", 33, 68, -133219)
    assert words(segments) == [
        {"word": "EXCUSE", "start_s": 0.33, "end_s": 0.69},
        {"word": "ME", "start_s": 0.76, "end_s": 0.89},
        {"word": "++LAUGHTER++", "start_s": 0.89, "end_s": 0.96},
    ]
    path.write_text(WDSEG.replace("   76    88", "   76  xx"))
    with pytest.raises(WdsegError, match="expected 'SFrm EFrm SegAScr Word'") as caught:
        parse_wdseg(path)
    assert caught.value.line == 5
    path.write_text("\t SFrm  EFrm    SegAScr Word\n Total score: 0\n")
    with pytest.raises(WdsegError, match="no segments"):
        parse_wdseg(path)


def test_tolerant_decoding(scratch_dir):
    path = scratch_dir / "t.txt"
    path.write_bytes(b"caf\xe9 ok\r\n\xef\xbb\xbfnot a bom here\r\nutf8 caf\xc3\xa9\r\n")
    decoded = read_lines(path)
    assert decoded.lines == ["caf\u00e9 ok", "\ufeffnot a bom here", "utf8 caf\u00e9"]
    assert decoded.fallback_lines == 1 and not decoded.binary
    path.write_bytes(b"\xef\xbb\xbfheader\nline\n")
    assert read_lines(path).lines == ["header", "line"]
    path.write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")
    assert read_lines(path).binary


def test_standard_split():
    assert len(known_dialogues()) == 151
    assert standard_split("Ses05M_script01_1b", 5) == "test"
    assert standard_split("Ses01M_impro01", 1) == "valid"  # listed as valid in the structure file
    assert standard_split("Ses01F_impro01", 1) == "train"
    # Ids the structure does not know: a fixed hash of the id picks ~10 % of them for valid.
    assert [standard_split(d, int(d[4])) for d in ("Ses01F_impro08", "Ses03M_impro05", "Ses01F_impro08a",
                                                    "Ses04M_impro06b", "Ses05F_impro09")] == [
        "train", "train", "valid", "valid", "test"]
    assert standard_split("Ses01F_impro03", 1) == "train"  # known: the structure wins over the hash
    assert hash_valid("Ses01F_impro03")
    assert sum(hash_valid(f"Ses01F_extra{i:04d}") for i in range(10000)) == 1028
