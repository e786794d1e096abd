"""Parser for ``dialog/transcriptions/<dialog>.txt``.

::

    Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.
    Ses01F_impro01_M000 [007.5712-010.4750]: Do you have your forms?

Times are zero-padded (``%08.4f``); lines overlap in time and are not always in start order,
so they are joined to labels by id, never by position. Kept as they are in the text: noise tags
such as ``[LAUGHTER]``. Skipped and counted: ``XX`` segments (``..._MXX0``: no wav, no label)
and comment lines (any line that does not begin with an ``Ses`` id).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dgnode.corpus import rejects as R
from dgnode.corpus.emo_evaluation import ParsedLines, check_utterance_id
from dgnode.corpus.names import UTT_RE, XX_SEGMENT_RE
from dgnode.corpus.rejects import RejectLog
from dgnode.corpus.textio import has_control_characters

__all__ = ["LINE_RE", "TranscriptLine", "parse_transcription"]

_NUMBER = r"\d+(?:\.\d*)?"
LINE_RE = re.compile(rf"^(?P<utt>\S+)\s+\[\s*(?P<start>{_NUMBER})\s*-\s*(?P<end>{_NUMBER})\s*\]\s*:\s?(?P<text>.*)$")
_LOOKS_LIKE_ID = re.compile(r"^Ses\d")


@dataclass
class TranscriptLine:
    utt_id: str
    start_s: float
    end_s: float
    text: str
    line: int


def parse_transcription(lines: list[str], path: str | Path, dialog_id: str, log: RejectLog) -> ParsedLines:
    """Valid :class:`TranscriptLine` s of a decoded transcription file of ``dialog_id``."""
    result = ParsedLines(records=[])
    seen: set[str] = set()
    for index, raw in enumerate(lines):
        number = index + 1
        line = raw.strip()
        if not line:
            continue
        match = LINE_RE.match(line)
        if match is None:
            if _LOOKS_LIKE_ID.match(line):
                utt_id = line.split()[0]
                if UTT_RE.match(utt_id):
                    result.dropped_ids.add(utt_id)
                log.add(R.MALFORMED_TRANSCRIPTION_LINE, path,
                        f"expected 'utt_id [start-end]: text', got {line[:80]!r}", line=number,
                        utt_id=utt_id if UTT_RE.match(utt_id) else None)
            else:
                log.add(R.COMMENT_LINE, path, f"not an utterance line: {line[:80]!r}", line=number)
            continue
        utt_id = match["utt"]
        if XX_SEGMENT_RE.match(utt_id):
            log.add(R.XX_SEGMENT, path, f"{utt_id}: segment without wav or label", line=number, utt_id=utt_id)
            continue
        if has_control_characters(line):
            result.dropped_ids.add(utt_id)
            log.add(R.UNDECODABLE, path, f"{utt_id}: control characters in the line, the text is unusable",
                    line=number, utt_id=utt_id)
            continue
        if not check_utterance_id(utt_id, dialog_id, number, path, log):
            result.dropped_ids.add(utt_id)
            continue
        start, end = float(match["start"]), float(match["end"])
        if end <= start:
            result.dropped_ids.add(utt_id)
            log.add(R.BAD_TIMES, path, f"{utt_id}: end {end} is not after start {start}", line=number, utt_id=utt_id)
            continue
        if utt_id in seen:
            log.add(R.DUPLICATE_UTTERANCE, path, f"{utt_id} already has a line above; this one is ignored",
                    line=number, utt_id=utt_id)
            continue
        seen.add(utt_id)
        result.records.append(TranscriptLine(utt_id, start, end, match["text"].strip(), number))
    return result
