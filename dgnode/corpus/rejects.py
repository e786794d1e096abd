"""Everything the corpus scan skipped or rejected, one row each, with the reason.

Two kinds of reasons:

* **skips** (:data:`SKIP_REASONS`) are expected in a real copy and never an error: macOS junk
  (``.DS_Store``, ``._*`` AppleDouble sidecars, ``__MACOSX/`` folders), other hidden entries,
  ``XX`` transcription segments (no wav, no label) and comment lines in transcriptions;
* **rejects** are malformed or inconsistent input. In strict mode the first one raises an
  :class:`~dgnode.errors.InputError` naming the file and line.

A reject drops only what it names (a line, an utterance, or a file when the file itself is
unusable); its neighbours are read as usual.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from dgnode.errors import InputError

__all__ = [
    "BAD_TIMES", "BAD_UTTERANCE_ID", "COMMENT_LINE", "DUPLICATE_SESSION", "DUPLICATE_UTTERANCE",
    "HIDDEN_ENTRY", "LABELS_WITHOUT_TRANSCRIPTION", "LABEL_WITHOUT_TRANSCRIPTION_LINE", "MACOS_JUNK",
    "MALFORMED_RATER_LINE", "MALFORMED_SUMMARY_LINE", "MALFORMED_TRANSCRIPTION_LINE", "MALFORMED_WDSEG",
    "MISSING_FOLDER", "MISSING_WAV", "REJECT_COLUMNS", "Reject", "RejectLog", "SKIP_REASONS",
    "TRANSCRIPTION_LINE_WITHOUT_LABEL", "TRANSCRIPTION_WITHOUT_LABELS", "UNDECODABLE", "UNKNOWN_DIALOGUE",
    "UNREADABLE", "UNRECOGNISED_LINE", "UNRECOGNISED_NAME", "WRONG_SESSION", "XX_SEGMENT",
]

# Skips: expected in real copies, counted, never errors.
MACOS_JUNK = "macos-junk"
HIDDEN_ENTRY = "hidden-entry"
XX_SEGMENT = "xx-segment"
COMMENT_LINE = "comment-line"
SKIP_REASONS = frozenset({MACOS_JUNK, HIDDEN_ENTRY, XX_SEGMENT, COMMENT_LINE})

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
