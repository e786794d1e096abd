"""Parser for ``dialog/EmoEvaluation/<dialog>.txt``.

::

    % [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

    [6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]
    C-E2:<TAB>Neutral;<TAB>()
    A-E3:<TAB>val 3; act 2; dom  2;<TAB>()

One block per utterance: a summary line (times, id, consensus code, mean valence/activation/
dominance), then one ``C-`` line per rater (categories separated by ``;``), then ``A-`` lines
(dimensional ratings, not used here; ``dom`` may be empty). Blocks are separated by blank lines
and are *not* chronological (all F utterances, then all M): callers sort by start time.

A malformed summary line rejects its block (the rater lines after it are part of that reject);
a malformed ``C-`` line is rejected alone and its block keeps the other raters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from dgnode.corpus import rejects as R
from dgnode.corpus.labels import EMOTION_CODES, majority_category
from dgnode.corpus.names import parse_utterance_id
from dgnode.corpus.rejects import RejectLog
from dgnode.corpus.textio import has_control_characters

__all__ = [
    "EmoBlock", "ParsedLines", "RATER_RE", "RaterVote", "SUMMARY_RE", "check_utterance_id",
    "parse_emo_evaluation", "parse_rater_categories",
]

_NUMBER = r"\d+(?:\.\d*)?"
SUMMARY_RE = re.compile(
    rf"^\[\s*(?P<start>{_NUMBER})\s*-\s*(?P<end>{_NUMBER})\s*\]\s+(?P<utt>\S+)\s+(?P<code>\S+)\s+\[(?P<vad>[^\]]*)\]\s*$"
)
RATER_RE = re.compile(r"^C-(?P<rater>[A-Za-z]+\d*)\s*:\s*(?P<rest>.*)$")
_ID_IN_LINE_RE = re.compile(r"\bSes0[1-5][FM]_\S+_[FM]\d{3}\b")


@dataclass
class RaterVote:
    rater: str
    categories: tuple[str, ...]
    line: int


@dataclass
class EmoBlock:
    """One utterance's evaluation: ``line`` is the 1-based line of its summary."""

    utt_id: str
    start_s: float
    end_s: float
    code: str
    line: int
    votes: list[RaterVote] = field(default_factory=list)

    @property
    def majority(self) -> str | None:
        """The raters' majority category (see :func:`dgnode.corpus.labels.majority_category`)."""
        return majority_category(vote.categories for vote in self.votes)


@dataclass
class ParsedLines:
    """Valid records of one file, and the utterance ids whose lines were rejected."""

    records: list
    dropped_ids: set[str] = field(default_factory=set)


def parse_rater_categories(rest: str) -> tuple[str, ...]:
    """``"Neutral; Anger;\\t(curious)"`` -> ``("Neutral", "Anger")``.

    The free-text comment in parentheses is dropped; ``Other:annoyed`` keeps ``Other``.
    """
    categories_part = rest.split("(", 1)[0]
    names = []
    for token in categories_part.split(";"):
        name = token.split(":", 1)[0].strip()
        if name:
            names.append(name)
    return tuple(names)


def parse_emo_evaluation(lines: list[str], path: str | Path, dialog_id: str, log: RejectLog) -> ParsedLines:
    """Valid :class:`EmoBlock` s of a decoded EmoEvaluation file of ``dialog_id``.

    Each fault goes to ``log`` with its line number; ``dropped_ids`` are the ids of blocks that
    were rejected (so the caller does not report them a second time when joining).
    """
    result = ParsedLines(records=[])
    seen: set[str] = set()
    current: EmoBlock | None = None
    in_broken_block = False
    for index, text in enumerate(lines):
        number = index + 1
        line = text.strip()
        if not line:
            current, in_broken_block = None, False
            continue
        if line.startswith("%"):
            continue
        if line.startswith("["):
            current, in_broken_block = None, False
            block = _parse_summary(line, number, path, dialog_id, log, result)
            if block is None:
                in_broken_block = True
            elif block.utt_id in seen:
                log.add(R.DUPLICATE_UTTERANCE, path, f"{block.utt_id} already has a block above; this one is ignored",
                        line=number, utt_id=block.utt_id)
                in_broken_block = True
            else:
                seen.add(block.utt_id)
                result.records.append(block)
                current = block
            continue
        if in_broken_block:
            continue  # rater lines of a rejected block: covered by that block's reject
        if line.startswith("C-"):
            match = RATER_RE.match(line)
            if match is None or current is None:
                what = "rater line outside an utterance block" if match else "expected 'C-<rater>:<TAB>Category; ...'"
                log.add(R.MALFORMED_RATER_LINE, path, f"{what}: {line[:80]!r}", line=number,
                        utt_id=current.utt_id if current else None)
                continue
            current.votes.append(RaterVote(match["rater"], parse_rater_categories(match["rest"]), number))
            continue
        if line.startswith("A-") and current is not None:
            continue  # dimensional ratings: not used, and their ``dom`` may be empty
        log.add(R.UNRECOGNISED_LINE, path,
                f"expected a '[start - end] id code [v, a, d]' summary, a 'C-'/'A-' rater line or a blank line, "
                f"got {line[:80]!r}", line=number)
    return result


def _parse_summary(
    line: str, number: int, path: str | Path, dialog_id: str, log: RejectLog, result: ParsedLines
) -> EmoBlock | None:
    match = SUMMARY_RE.match(line)
    if match is None or has_control_characters(line):
        found = _ID_IN_LINE_RE.search(line)
        utt_id = found.group(0) if found else None
        if utt_id:
            result.dropped_ids.add(utt_id)
        reason = R.UNDECODABLE if has_control_characters(line) else R.MALFORMED_SUMMARY_LINE
        log.add(reason, path, f"expected '[start - end]<TAB>utt_id<TAB>code<TAB>[v, a, d]', got {line[:80]!r}",
                line=number, utt_id=utt_id)
        return None
    utt_id, code = match["utt"], match["code"]
    if code not in EMOTION_CODES:
        result.dropped_ids.add(utt_id)
        log.add(R.MALFORMED_SUMMARY_LINE, path,
                f"unknown emotion code {code!r} for {utt_id}; expected one of {' '.join(EMOTION_CODES)}",
                line=number, utt_id=utt_id)
        return None
    if not check_utterance_id(utt_id, dialog_id, number, path, log):
        result.dropped_ids.add(utt_id)
        return None
    start, end = float(match["start"]), float(match["end"])
    if end <= start:
        result.dropped_ids.add(utt_id)
        log.add(R.BAD_TIMES, path, f"{utt_id}: end {end} is not after start {start}", line=number, utt_id=utt_id)
        return None
    return EmoBlock(utt_id=utt_id, start_s=start, end_s=end, code=code, line=number)


def check_utterance_id(utt_id: str, dialog_id: str, number: int, path: str | Path, log: RejectLog) -> bool:
    """Whole-id checks shared by the label and transcription parsers; logs and returns False on failure."""
    parsed = parse_utterance_id(utt_id)
    if parsed is None:
        log.add(R.BAD_UTTERANCE_ID, path,
                f"{utt_id!r} is not an utterance id (expected e.g. {dialog_id}_F000)", line=number, utt_id=utt_id)
        return False
    if parsed.dialog_id != dialog_id:
        log.add(R.UNKNOWN_DIALOGUE, path,
                f"{utt_id} belongs to dialogue {parsed.dialog_id}, not to this file's {dialog_id}",
                line=number, utt_id=utt_id)
        return False
    return True

