"""Reading MELD's CSVs: cp1252 in both its forms, times, and every malformed row counted."""

from __future__ import annotations

import pytest

from dgnode.corpus import rejects as R
from dgnode.corpus.meld_csv import decode_csv_line, parse_time, read_meld_csv
from dgnode.corpus.meld_names import CSV_COLUMNS
from dgnode.corpus.rejects import RejectLog
from dgnode.errors import InputError

HEADER = ",".join(CSV_COLUMNS).encode()


def _row(sr, text: bytes, dialogue="0", utterance="0", start="00:01:00,000", end="00:01:02,500", emotion=b"joy",
         sentiment=b"positive", season="3", episode="7") -> bytes:
    return b",".join([str(sr).encode(), text, b"Ross", emotion, sentiment, str(dialogue).encode(),
                      str(utterance).encode(), season.encode(), episode.encode(), f'"{start}"'.encode(),
                      f'"{end}"'.encode()])


def test_cp1252_bytes_c1_controls_and_no_break_spaces_decode_to_the_intended_characters():
    assert decode_csv_line(b"I\x92m here \x85 \x93ok\x94 \x96 \x97") == ("I\u2019m here \u2026 \u201cok\u201d \u2013 \u2014", True)
    # cp1252 bytes that went through Latin-1 once: UTF-8 C1 controls (read as cp1252 they show as Â’).
    assert decode_csv_line("don\u0092t".encode("utf-8")) == ("don\u2019t", True)
    assert "Â" not in decode_csv_line("don\u0092t".encode("utf-8"))[0]
    assert decode_csv_line(b"oh\xa0no") == ("oh no", True) and decode_csv_line("oh\u00a0no".encode()) == ("oh no", True)
    assert decode_csv_line("plain \u2019 utf-8".encode()) == ("plain \u2019 utf-8", False)
    assert decode_csv_line(b"undefined \x81 byte \x92") == ("undefined \x81 byte \u2019", True)


@pytest.mark.parametrize("text, seconds, one_digit", [
    ("00:16:16,059", 976.059, False), ("0:16:16,059", 976.059, True), ("00:06:47,28", 407.28, False),
    ("1:02:03,4", 3723.4, True), ("00:61:00,000", None, False), ("16:16,059", None, False), ("", None, False),
])
def test_times_read_both_hour_forms_and_short_fractions(text, seconds, one_digit):
    value, short_hour = parse_time(text)
    assert (value is None) == (seconds is None) and short_hour == one_digit
    if seconds is not None:
        assert value == pytest.approx(seconds)


def test_every_irregular_row_is_counted_with_its_line_and_good_rows_are_kept(tmp_path):
    lines = [
        HEADER,
        _row(1, b"I\x92m fine.", 0, 0),                                   # 2: cp1252 byte
        _row(2, b'"Well, ""no""."', 0, 1, start="0:01:03,000", end="0:01:04,000"),  # 3: quotes, one-digit hours
        _row(5, b"Skip.", 0, 2),                                          # 4: Sr No. jumps 2 -> 5
        _row(6, b"Again.", 0, 2),                                         # 5: repeats dia0_utt2
        b"7,too,few,fields",                                              # 6: malformed
        _row(8, b"Bad id.", "x", 3),                                      # 7: Dialogue_ID not a number
        _row(9, b"Far.", 1500, 0),                                        # 8: beyond the train numbering
        _row(10, b"Odd.", 1, 0, emotion=b"boredom"),                      # 9: unknown emotion, kept
        _row(11, b"Late.", 1, 1, end="soon"),                             # 10: malformed time, kept
        b"",                                                              # 11: blank
        _row(12, b'"Two\r\nlines."', 1, 2),                               # 12-13: a quoted line break
        _row(13, b"Last.", 1, 3),                                         # 14
    ]
    path = tmp_path / "train_sent_emo.csv"
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")
    log = RejectLog()
    rows = read_meld_csv(path, "train", log)
    assert [(r.dialogue, r.utterance, r.line) for r in rows] == [(0, 0, 2), (0, 1, 3), (0, 2, 4), (1, 0, 9), (1, 1, 10),
                                                                 (1, 2, 12), (1, 3, 14)]
    assert rows[0].text == "I\u2019m fine." and rows[1].text == 'Well, "no".' and rows[5].text == "Two\nlines."
    assert rows[1].start_s == pytest.approx(63.0) and rows[4].end_s is None and rows[4].span_s is None
    assert rows[3].emotion == "boredom" and rows[0].utt_id == "train_dia0_utt0" and rows[0].season == 3
    assert [(r.reason, r.line, r.utt_id) for r in log.rows] == [
        (R.CP1252_TEXT, 2, "train_dia0_utt0"),
        (R.ONE_DIGIT_HOUR, 3, "train_dia0_utt1"),
        (R.SR_NO_GAP, 4, "train_dia0_utt2"),
        (R.DUPLICATE_UTTERANCE, 5, "train_dia0_utt2"),
        (R.MALFORMED_CSV_ROW, 6, None),
        (R.MALFORMED_CSV_ROW, 7, None),
        (R.MALFORMED_CSV_ROW, 8, None),
        (R.UNKNOWN_LABEL, 9, "train_dia1_utt0"),
        (R.SR_NO_GAP, 9, "train_dia1_utt0"),  # 6 -> 10: dropped rows do not count
        (R.MALFORMED_TIME, 10, "train_dia1_utt1"),
    ]
    assert "beyond the standard train numbering" in next(r.detail for r in log.rows if r.line == 8)
    assert all(r.path == str(path) for r in log.rows)


def test_a_file_that_is_not_a_meld_csv_is_one_reject(tmp_path):
    wrong = tmp_path / "dev_sent_emo.csv"
    wrong.write_bytes(b"id,text\r\n1,hello\r\n")
    log = RejectLog()
    assert read_meld_csv(wrong, "dev", log) == []
    assert [(r.reason, r.line) for r in log.rows] == [(R.MALFORMED_CSV_ROW, 1)]
    binary = tmp_path / "test_sent_emo.csv"
    binary.write_bytes(b"\x00\x01PK" * 10)
    assert read_meld_csv(binary, "test", log) == [] and log.rows[-1].reason == R.UNDECODABLE


def test_strict_reading_stops_at_the_first_irregular_row(tmp_path):
    path = tmp_path / "train_sent_emo.csv"
    path.write_bytes(b"\r\n".join([HEADER, _row(1, b"Fine.", 0, 0), _row(2, b"Caf\xe9\x92s.", 0, 1)]) + b"\r\n")
    with pytest.raises(InputError, match=rf"^{path}:3: cp1252-text: cp1252 characters decoded"):
        read_meld_csv(path, "train", RejectLog(strict=True))
