"""Parser for ``sentences/ForcedAlignment/<dialog>/<utt>.wdseg`` (CMU Sphinx-3 word segmentation).

::

    <TAB> SFrm  EFrm    SegAScr Word
    <TAB>    0    32     -46548 <s>
    <TAB>   33    68    -133219 EXCUSE
    <TAB>   69    88     -99560 ME(2)
    <TAB>   89   193    -163851 </s>
     Total score:     -443178

Frames are 10 ms from the start of the utterance wav and the end frame is inclusive, so a
segment spans ``[SFrm / 100, (EFrm + 1) / 100)`` seconds. :func:`words` drops the silence
markers ``<s> </s> <sil>``, strips pronunciation variants (``ME(2)`` -> ``ME``) and keeps fillers
such as ``++LAUGHTER++``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dgnode.corpus.textio import decode_lines, read_lines

__all__ = [
    "FRAMES_PER_SECOND", "SEGMENT_RE", "SILENCE_MARKERS", "Segment", "WdsegError", "parse_wdseg", "words",
]

FRAMES_PER_SECOND = 100
SILENCE_MARKERS = frozenset({"<s>", "</s>", "<sil>"})
SEGMENT_RE = re.compile(r"^\s*(?P<start>\d+)\s+(?P<end>\d+)\s+(?P<score>-?\d+)\s+(?P<word>\S+)\s*$")
_VARIANT_RE = re.compile(r"\(\d+\)$")


class WdsegError(ValueError):
    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class Segment:
    word: str
    start_frame: int
    end_frame: int  # inclusive
    score: int

    @property
    def start_s(self) -> float:
        return self.start_frame / FRAMES_PER_SECOND

    @property
    def end_s(self) -> float:
        return (self.end_frame + 1) / FRAMES_PER_SECOND


def parse_wdseg(path: str | Path, read: Callable[[str], bytes] | None = None) -> list[Segment]:
    """Segments of a .wdseg file; :class:`WdsegError` (with the line) when it is malformed or
    cannot be read. ``read`` gets the bytes of ``path`` (default: a local file; the scan passes
    its tree's reader, e.g. for an ``s3://`` URI)."""
    try:
        decoded = read_lines(path) if read is None else decode_lines(read(str(path)), path)
    except OSError as error:
        raise WdsegError(f"cannot read the file: {error.strerror or error}") from None
    if decoded.binary:
        raise WdsegError("binary content, not a Sphinx word segmentation")
    segments: list[Segment] = []
    for index, raw in enumerate(decoded.lines):
        line = raw.strip()
        if not line or "SFrm" in line or line.startswith("Total score"):
            continue
        match = SEGMENT_RE.match(line)
        if match is None:
            raise WdsegError(f"expected 'SFrm EFrm SegAScr Word', got {line[:80]!r}", index + 1)
        start, end = int(match["start"]), int(match["end"])
        if end < start:
            raise WdsegError(f"end frame {end} before start frame {start}", index + 1)
        segments.append(Segment(match["word"], start, end, int(match["score"])))
    if not segments:
        raise WdsegError("no segments")
    return segments


def words(segments: list[Segment]) -> list[dict]:
    """Word alignment ``[{word, start_s, end_s}]`` without silence markers or variant numbers."""
    return [
        {"word": _VARIANT_RE.sub("", s.word), "start_s": s.start_s, "end_s": s.end_s}
        for s in segments
        if s.word not in SILENCE_MARKERS
    ]
