"""Everything the corpus scan skipped or rejected, one row each, with the reason.

Two kinds of reasons:

* **skips** (:data:`SKIP_REASONS`) are expected in a real copy and never an error: macOS junk
  (``.DS_Store``, ``._*`` AppleDouble sidecars, ``__MACOSX/`` folders), other hidden entries,
  ``XX`` transcription segments (no wav, no label) and comment lines in transcriptions;
* **rejects** are malformed or inconsistent input. In strict mode the first one raises an
  :class:`~dgnode.errors.InputError` naming the file and line.

A reject drops only what it names (a line, an utterance, or a file when the file itself is
unusable); its neighbours are read as usual. MELD's traps (:mod:`dgnode.corpus.meld_scan`) are
rejects too, so ``--strict`` stops at the first; most keep their utterance and say what was done
instead (text decoded as cp1252, a clip cut, an utterance kept without video).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from dgnode.errors import InputError

__all__ = [
    "ARCHIVE_UNPACKED", "BAD_TIMES", "BAD_UTTERANCE_ID", "CLIP_WITHOUT_ROW", "COMMENT_LINE", "CORRUPT_CLIP",
    "CP1252_TEXT", "DUPLICATE_CLIP", "DUPLICATE_SESSION", "DUPLICATE_SOURCE", "DUPLICATE_UTTERANCE", "HIDDEN_ENTRY",
    "KEPT_REASONS", "LABELS_WITHOUT_TRANSCRIPTION", "LABEL_WITHOUT_TRANSCRIPTION_LINE", "MACOS_JUNK", "MALFORMED_CSV_ROW",
    "MALFORMED_RATER_LINE", "MALFORMED_TIME", "MALFORMED_SUMMARY_LINE", "MALFORMED_TRANSCRIPTION_LINE", "MALFORMED_WDSEG",
    "MISSING_CLIP", "MISSING_CSV", "MISSING_FOLDER", "MISSING_WAV", "ONE_DIGIT_HOUR", "OVERLAPPING_SPAN",
    "OVERLONG_CLIP", "PREFIXED_CLIP", "REJECT_COLUMNS", "Reject", "RejectLog", "SHORT_SPAN", "SKIP_REASONS",
    "SR_NO_GAP", "TRANSCRIPTION_LINE_WITHOUT_LABEL", "TRANSCRIPTION_WITHOUT_LABELS", "UNDECODABLE",
    "UNKNOWN_DIALOGUE", "UNKNOWN_LABEL", "UNREADABLE", "UNRECOGNISED_LINE", "UNRECOGNISED_NAME",
    "UNSAFE_ARCHIVE_MEMBER", "WRONG_SESSION", "XX_SEGMENT",
]

# Skips: expected in real copies, counted, never errors.
MACOS_JUNK = "macos-junk"
HIDDEN_ENTRY = "hidden-entry"
XX_SEGMENT = "xx-segment"
COMMENT_LINE = "comment-line"
# MELD: an archive whose unpacked folder sits beside it is not read again.
ARCHIVE_UNPACKED = "archive-already-unpacked"
SKIP_REASONS = frozenset({MACOS_JUNK, HIDDEN_ENTRY, XX_SEGMENT, COMMENT_LINE, ARCHIVE_UNPACKED})

# Rejects: malformed or inconsistent input.
UNRECOGNISED_NAME = "unrecognised-name"
MISSING_FOLDER = "missing-folder"
DUPLICATE_SESSION = "duplicate-session"
WRONG_SESSION = "wrong-session"
UNDECODABLE = "undecodable"
UNREADABLE = "unreadable"
MALFORMED_SUMMARY_LINE = "malformed-summary-line"
MALFORMED_RATER_LINE = "malformed-rater-line"
UNRECOGNISED_LINE = "unrecognised-line"
MALFORMED_TRANSCRIPTION_LINE = "malformed-transcription-line"
BAD_UTTERANCE_ID = "bad-utterance-id"
UNKNOWN_DIALOGUE = "unknown-dialogue"
BAD_TIMES = "bad-times"
DUPLICATE_UTTERANCE = "duplicate-utterance"
LABELS_WITHOUT_TRANSCRIPTION = "labels-without-transcription"
TRANSCRIPTION_WITHOUT_LABELS = "transcription-without-labels"
LABEL_WITHOUT_TRANSCRIPTION_LINE = "label-without-transcription-line"
TRANSCRIPTION_LINE_WITHOUT_LABEL = "transcription-line-without-label"
MISSING_WAV = "missing-wav"
MALFORMED_WDSEG = "malformed-wdseg"
# MELD (see dgnode.corpus.meld_scan for what each does to the utterance).
CLIP_WITHOUT_ROW = "clip-without-row"
CORRUPT_CLIP = "corrupt-clip"
CP1252_TEXT = "cp1252-text"
DUPLICATE_CLIP = "duplicate-clip"
DUPLICATE_SOURCE = "duplicate-source"
MALFORMED_CSV_ROW = "malformed-csv-row"
MALFORMED_TIME = "malformed-time"
MISSING_CLIP = "missing-clip"
MISSING_CSV = "missing-csv"
ONE_DIGIT_HOUR = "one-digit-hour"
OVERLAPPING_SPAN = "overlapping-span"
OVERLONG_CLIP = "overlong-clip"
PREFIXED_CLIP = "prefixed-clip"
SHORT_SPAN = "short-span"
SR_NO_GAP = "sr-no-gap"
UNKNOWN_LABEL = "unknown-label"
UNSAFE_ARCHIVE_MEMBER = "unsafe-archive-member"
# Rejects whose utterance stays in the manifest (the row says what was done instead).
KEPT_REASONS = frozenset({MALFORMED_TIME, CORRUPT_CLIP, CP1252_TEXT, MALFORMED_WDSEG, MISSING_CLIP, ONE_DIGIT_HOUR,
                          OVERLAPPING_SPAN, OVERLONG_CLIP, PREFIXED_CLIP, SHORT_SPAN, SR_NO_GAP, UNKNOWN_LABEL})

REJECT_COLUMNS = ("path", "line", "utt_id", "reason", "detail")


@dataclass(frozen=True)
class Reject:
    path: str
    line: int | None
    utt_id: str | None
    reason: str
    detail: str


@dataclass
class RejectLog:
    """Collects rejects; with ``strict=True`` a reject that is not a skip raises instead."""

    strict: bool = False
    rows: list[Reject] = field(default_factory=list)

    def add(
        self,
        reason: str,
        path: str | Path,
        detail: str,
        line: int | None = None,
        utt_id: str | None = None,
    ) -> None:
        if self.strict and reason not in SKIP_REASONS:
            raise InputError(f"{reason}: {detail}", path=str(path), line=line)
        self.rows.append(Reject(str(path), line, utt_id, reason, detail))

    def counts(self) -> Counter[str]:
        return Counter(row.reason for row in self.rows)
