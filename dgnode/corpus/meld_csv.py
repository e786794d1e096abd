"""Read one of MELD's ``*_sent_emo.csv`` files into checked rows, counting every irregularity.

Columns (:data:`~dgnode.corpus.meld_names.CSV_COLUMNS`): ``Sr No.``, ``Utterance``,
``Speaker``, ``Emotion``, ``Sentiment``, ``Dialogue_ID``, ``Utterance_ID``, ``Season``,
``Episode``, ``StartTime``, ``EndTime``; CRLF lines; times quoted (``"00:16:16,059"``).

What the reader tolerates, each counted in the rejects (:mod:`dgnode.corpus.rejects`) with the
file, the line and the utterance:

* **cp1252** (``cp1252-text``, kept): the CSVs of the archive were written on Windows. A line
  that is not UTF-8 is decoded as cp1252 (``\\x92`` is ``’``); a UTF-8 line holding C1 control
  characters U+0080-U+009F (cp1252 bytes that went through Latin-1 once: read as cp1252 they show
  as ``Â’``) gets each one replaced by its cp1252 character; a no-break space U+00A0 becomes a
  space. Bytes cp1252 leaves undefined (``\\x81 \\x8d \\x8f \\x90 \\x9d``) are read as Latin-1.
* **one-digit hours** (``one-digit-hour``, kept): ``0:16:16,059`` beside ``00:16:16,059``; both
  read as hours. The part after the comma is a decimal fraction of a second (three real rows
  write two digits: ``00:06:47,28`` is 47.28 s). A time matching neither is ``malformed-time`` (kept:
  the clip's own length is used).
* **Sr No. gaps** (``sr-no-gap``, kept): the running number skips values (it is not an id).
* **unknown labels** (``unknown-label``, kept with a null label): an Emotion or Sentiment outside
  MELD's seven or three values.
* **malformed rows** (``malformed-csv-row``, dropped): not 11 fields, or a ``Dialogue_ID``,
  ``Utterance_ID``, ``Season`` or ``Episode`` that is not a whole number, or a ``Dialogue_ID``
  beyond the standard numbering (:data:`~dgnode.corpus.meld_names.DIALOGUE_LIMITS`);
* **repeats** (``duplicate-utterance``, the later row dropped): one (dialogue, utterance) twice.

A file that is binary (NUL bytes) or whose header is not MELD's is one reject and no rows.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from dgnode.corpus import rejects as R
from dgnode.corpus.labels import MELD7_LABELS, SENTIMENT3_LABELS
from dgnode.corpus.meld_names import CSV_COLUMNS, DIALOGUE_LIMITS, utt_id_of
from dgnode.corpus.rejects import RejectLog

__all__ = ["MeldRow", "decode_csv_line", "parse_time", "read_meld_csv"]

_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2}),(\d{1,3})$")
_C1_RE = re.compile("[\u0080-\u009f\u00a0]")
_BINARY_PROBE_BYTES = 8192


@dataclass
class MeldRow:
    """One utterance row of a split's CSV."""

    split: str  # train, dev or test (MELD's names)
    line: int  # 1-based line where the row starts
    sr_no: str
    text: str
    speaker: str
    emotion: str
    sentiment: str
    dialogue: int
    utterance: int
    season: int
    episode: int
    start_s: float | None  # seconds into the episode; None when the field is malformed
    end_s: float | None

    @property
    def utt_id(self) -> str:
        return utt_id_of(self.split, self.dialogue, self.utterance)

    @property
    def span_s(self) -> float | None:
        """``EndTime - StartTime`` from the CSV, or ``None`` when either is malformed."""
        if self.start_s is None or self.end_s is None:
            return None
        return round(self.end_s - self.start_s, 6)


def _c1_to_cp1252(match: re.Match) -> str:
    char = match.group(0)
    if char == "\u00a0":
        return " "
    try:
        return bytes([ord(char)]).decode("cp1252")
    except UnicodeDecodeError:
        return char  # a C1 code cp1252 leaves undefined: nothing better to say


def decode_csv_line(raw: bytes) -> tuple[str, bool]:
    """One line of a MELD CSV as text, and whether cp1252 was involved (see the module docstring)."""
    try:
        text, fallback = raw.decode("utf-8"), False
    except UnicodeDecodeError:
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError:
            text = "".join(bytes([b]).decode("cp1252", errors="strict") if b not in b"\x81\x8d\x8f\x90\x9d"
                           else chr(b) for b in raw)
        fallback = True
    fixed = _C1_RE.sub(_c1_to_cp1252, text)
    return fixed, fallback or fixed != text


def parse_time(value: str) -> tuple[float | None, bool]:
    """``hh:mm:ss,ms`` (or ``h:mm:ss,ms``) -> (seconds, one-digit hour); ``(None, False)`` when malformed."""
    match = _TIME_RE.match(value.strip())
    if match is None:
        return None, False
    hours, minutes, seconds = (int(g) for g in match.groups()[:3])
    if minutes >= 60 or seconds >= 60:
        return None, False
    return hours * 3600 + minutes * 60 + seconds + float("0." + match.group(4)), len(match.group(1)) == 1


def _decoded_lines(data: bytes) -> tuple[list[str], set[int]]:
    """Physical lines (``\\r`` stripped) and the 1-based numbers of those that needed cp1252."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines, cp1252 = [], set()
    for number, raw in enumerate(data.split(b"\n"), start=1):
        text, used = decode_csv_line(raw.rstrip(b"\r"))
        lines.append(text)
        if used:
            cp1252.add(number)
    if lines and lines[-1] == "":
        lines.pop()
    return lines, cp1252


def _whole_number(value: str) -> int | None:
    value = value.strip()
    return int(value) if value.isdigit() else None


def read_meld_csv(path: Path, split: str, log: RejectLog) -> list[MeldRow]:
    """The rows of a split's CSV in file order; every irregularity logged (see the module docstring)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        log.add(R.UNREADABLE, path, f"cannot read the file: {error.strerror or error}; the split has no utterances")
        return []
    if b"\x00" in data[:_BINARY_PROBE_BYTES]:
        log.add(R.UNDECODABLE, path, "binary content (NUL bytes), not a CSV; the split has no utterances")
        return []
    lines, cp1252_lines = _decoded_lines(data)
    reader = csv.reader(line + "\n" for line in lines)
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != CSV_COLUMNS:
        log.add(R.MALFORMED_CSV_ROW, path, f"header {header!r} is not MELD's {list(CSV_COLUMNS)}; the split has no "
                "utterances", line=1)
        return []
    rows: list[MeldRow] = []
    seen: dict[tuple[int, int], int] = {}
    previous_sr: int | None = None
    previous_end = reader.line_num
    for fields in reader:
        line, end_line = previous_end + 1, reader.line_num
        previous_end = end_line
        if not fields:
            continue  # a blank line holds no row
        row = _row(fields, split, line, path, log)
        if row is None:
            continue
        sr = _whole_number(row.sr_no)
        if sr is None:
            log.add(R.SR_NO_GAP, path, f"Sr No. {row.sr_no!r} is not a number", line=line, utt_id=row.utt_id)
        elif previous_sr is not None and sr != previous_sr + 1:
            log.add(R.SR_NO_GAP, path, f"Sr No. jumps from {previous_sr} to {sr}", line=line, utt_id=row.utt_id)
        previous_sr = sr if sr is not None else previous_sr
        key = (row.dialogue, row.utterance)
        if key in seen:
            log.add(R.DUPLICATE_UTTERANCE, path, f"dia{key[0]}_utt{key[1]} repeats line {seen[key]}; this row is "
                    "dropped", line=line, utt_id=row.utt_id)
            continue
        seen[key] = line
        if any(n in cp1252_lines for n in range(line, end_line + 1)):
            log.add(R.CP1252_TEXT, path, "cp1252 characters decoded (e.g. \\x92 as ’)", line=line, utt_id=row.utt_id)
        rows.append(row)
    return rows


def _row(fields: list[str], split: str, line: int, path: Path, log: RejectLog) -> MeldRow | None:
    if len(fields) != len(CSV_COLUMNS):
        log.add(R.MALFORMED_CSV_ROW, path, f"{len(fields)} fields, expected {len(CSV_COLUMNS)}; row dropped", line=line)
        return None
    sr_no, text, speaker, emotion, sentiment, dialogue, utterance, season, episode, start, end = fields
    numbers = {name: _whole_number(value) for name, value in
               (("Dialogue_ID", dialogue), ("Utterance_ID", utterance), ("Season", season), ("Episode", episode))}
    bad = [f"{name} {value!r}" for (name, number), value in zip(numbers.items(), (dialogue, utterance, season, episode))
           if number is None]
    if bad:
        log.add(R.MALFORMED_CSV_ROW, path, f"{', '.join(bad)} not a whole number; row dropped", line=line)
        return None
    if numbers["Dialogue_ID"] >= DIALOGUE_LIMITS[split]:
        log.add(R.MALFORMED_CSV_ROW, path, f"Dialogue_ID {numbers['Dialogue_ID']} is beyond the standard {split} "
                f"numbering (< {DIALOGUE_LIMITS[split]}); row dropped", line=line)
        return None
    row = MeldRow(split, line, sr_no.strip(), text.strip(), speaker.strip(), emotion.strip().lower(),
                  sentiment.strip().lower(), numbers["Dialogue_ID"], numbers["Utterance_ID"], numbers["Season"],
                  numbers["Episode"], None, None)
    times, one_digit = {}, []
    for name, value in (("StartTime", start), ("EndTime", end)):
        seconds, short_hour = parse_time(value)
        times[name] = seconds
        if seconds is None:
            log.add(R.MALFORMED_TIME, path, f"{name} {value!r} is not hh:mm:ss,ms; the clip's own length is used", line=line,
                    utt_id=row.utt_id)
        elif short_hour:
            one_digit.append(f"{name} {value!r}")
    if one_digit:
        log.add(R.ONE_DIGIT_HOUR, path, f"{' and '.join(one_digit)}: hour written with one digit; read as hours",
                line=line, utt_id=row.utt_id)
    row.start_s, row.end_s = times["StartTime"], times["EndTime"]
    for column, value, known in (("Emotion", row.emotion, MELD7_LABELS), ("Sentiment", row.sentiment, SENTIMENT3_LABELS)):
        if value not in known:
            log.add(R.UNKNOWN_LABEL, path, f"{column} {value!r} is not one of {', '.join(known)}; kept with no label "
                    "under a scheme reading it", line=line, utt_id=row.utt_id)
    return row
