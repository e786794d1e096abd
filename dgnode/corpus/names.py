"""Names in the raw IEMOCAP release: dialogue and utterance ids, speakers, sides, macOS junk.

An utterance id reads ``Ses01F_impro01_M012``: session ``01``, the recording's motion-capture
actor ``F`` (the one on the **left** half of the video), the dialogue ``impro01``, then the
speaker's letter ``M`` and a per-speaker counter. The letter after the session number is *not*
the speaker; the last letter is. Speaker identity is ``(session, last letter)``, written
``Ses01.M``.

Ids are matched whole (anchored regexes), never by prefix: ``Ses05M_script01_1`` is a string
prefix of every ``Ses05M_script01_1b_*`` id. Character positions are never used either, since
``impro05a`` and ``script01_1b`` shift them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "APPLEDOUBLE_MAGIC", "APPLEDOUBLE_SIZE", "DIALOGUE_BODY", "DIALOG_RE", "DS_STORE_MAGIC", "MACOSX_DIR",
    "SESSION_DIR_RE", "UTT_RE", "UtteranceName", "XX_SEGMENT_RE", "dialog_of", "is_dialog_id",
    "is_hidden_or_junk", "is_macos_junk_name", "parse_utterance_id", "session_of_dialog", "speaker_of",
    "speaker_side_of",
]

DIALOGUE_BODY = r"(?:impro0[1-8][ab]?|script0[1-3]_[1-3]b?)"
DIALOG_RE = re.compile(rf"^Ses(0[1-5])([FM])_({DIALOGUE_BODY})$")
UTT_RE = re.compile(rf"^Ses(0[1-5])([FM])_({DIALOGUE_BODY})_([FM])(\d{{3}})$")
# Transcription segments without a wav or a label, e.g. ``Ses01F_script01_1_MXX0``.
XX_SEGMENT_RE = re.compile(rf"^Ses0[1-5][FM]_{DIALOGUE_BODY}_[FM]XX\w*$")
SESSION_DIR_RE = re.compile(r"^Session([1-5])$")

DS_STORE_MAGIC = bytes.fromhex("0000000142756431")  # "\0\0\0\1Bud1"
APPLEDOUBLE_MAGIC = bytes.fromhex("0005160700020000")
APPLEDOUBLE_SIZE = 4096
MACOSX_DIR = "__MACOSX"


@dataclass(frozen=True)
class UtteranceName:
    """The parts of a valid utterance id."""

    utt_id: str
    dialog_id: str
    session: int
    mocap_letter: str
    speaker_letter: str

    @property
    def speaker(self) -> str:
        """Speaker identity, e.g. ``Ses01.F``: session plus the id's last letter."""
        return f"Ses{self.session:02d}.{self.speaker_letter}"

    @property
    def speaker_side(self) -> str:
        """``left`` when the speaker wears the markers (``u[-4] == u[5]``), else ``right``."""
        return "left" if self.speaker_letter == self.mocap_letter else "right"


def parse_utterance_id(utt_id: str) -> UtteranceName | None:
    """The parts of ``utt_id``, or ``None`` when it is not a valid utterance id."""
    match = UTT_RE.match(utt_id)
    if match is None:
        return None
    session, mocap, body, speaker, _ = match.groups()
    return UtteranceName(
        utt_id=utt_id,
        dialog_id=f"Ses{session}{mocap}_{body}",
        session=int(session),
        mocap_letter=mocap,
        speaker_letter=speaker,
    )


def is_dialog_id(name: str) -> bool:
    return DIALOG_RE.match(name) is not None


def dialog_of(utt_id: str) -> str:
    """The dialogue of an utterance id: everything before the last underscore."""
    return utt_id.rsplit("_", 1)[0]


def session_of_dialog(dialog_id: str) -> int:
    """Session number (1-5) of a valid dialogue id; ValueError otherwise."""
    match = DIALOG_RE.match(dialog_id)
    if match is None:
        raise ValueError(f"not an IEMOCAP dialogue id: {dialog_id!r}")
    return int(match.group(1))


def speaker_of(utt_id: str) -> str:
    """``Ses01.F`` for ``Ses01M_impro01_F003``; ValueError for an invalid id."""
    parsed = parse_utterance_id(utt_id)
    if parsed is None:
        raise ValueError(f"not an IEMOCAP utterance id: {utt_id!r}")
    return parsed.speaker


def speaker_side_of(utt_id: str) -> str:
    """``left``/``right``: the half of the dialogue video that shows the speaker."""
    parsed = parse_utterance_id(utt_id)
    if parsed is None:
        raise ValueError(f"not an IEMOCAP utterance id: {utt_id!r}")
    return parsed.speaker_side


def is_macos_junk_name(name: str) -> bool:
    """``.DS_Store``, AppleDouble ``._*`` sidecars and ``__MACOSX`` folders."""
    return name == ".DS_Store" or name.startswith("._") or name == MACOSX_DIR


def is_hidden_or_junk(name: str) -> bool:
    """Entries never read as data: every dot-entry and ``__MACOSX``."""
    return name.startswith(".") or name == MACOSX_DIR
