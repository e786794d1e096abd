"""The traps of a real release that a synthetic one reproduces, and the rejects they must cause.

* macOS junk (:func:`write_junk`): ``.DS_Store`` files, 4096-byte AppleDouble ``._*`` sidecars
  and an ``OUT/__MACOSX/`` mirror tree, placed in folders the scan lists so that
  :func:`expected_rejects` can count them exactly;
* odd encodings (:func:`apply_encoding_traps`): one transcription in CRLF and cp1252 (with
  ``café``), one EmoEvaluation file in CRLF;
* ``XX`` segment lines and comment lines in transcriptions (counted per dialogue by the plan,
  written by :mod:`dgnode.corpus.synth_formats`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from dgnode.corpus import rejects as R
from dgnode.corpus.names import APPLEDOUBLE_MAGIC, APPLEDOUBLE_SIZE, DS_STORE_MAGIC, MACOSX_DIR
from dgnode.corpus.synth_dialogue import SynthDialogue
from dgnode.corpus.synth_formats import TreeWriter

__all__ = ["appledouble_bytes", "apply_encoding_traps", "ds_store_bytes", "expected_rejects", "write_junk"]

_CP1252_WORD = "caf\u00e9"


def apply_encoding_traps(dialogue: SynthDialogue) -> None:
    """Make the two trap dialogues' files CRLF (and one cp1252 with a non-ASCII word)."""
    if dialogue.dialog_id == "Ses01M_impro01":
        dialogue.transcription_encoding = "cp1252"
        dialogue.crlf_files = ("transcription",)
        target = dialogue.utterances[1]
        target.text = target.text[:-1] + f" at the {_CP1252_WORD}" + target.text[-1]
        target.tokens = target.tokens + ["AT", "THE", _CP1252_WORD.upper()]
    elif dialogue.dialog_id == "Ses03M_impro05a":
        dialogue.crlf_files = ("emo",)


def write_junk(writer: TreeWriter, out: Path, release: Path, dialogues: list[SynthDialogue], video: bool) -> list[Path]:
    """macOS junk in folders the scan lists; returns the paths (the ``__MACOSX`` folder is extra)."""
    first = dialogues[0]
    d, u = first.dialog_id, first.utterances[0].utt_id
    session_dir = release / f"Session{first.session}"
    ds_store = [release / ".DS_Store", session_dir / "dialog" / "EmoEvaluation" / ".DS_Store",
                session_dir / "sentences" / "wav" / d / ".DS_Store"]
    sidecars = [
        session_dir / "dialog" / "EmoEvaluation" / f"._{d}.txt",
        session_dir / "dialog" / "transcriptions" / f"._{d}.txt",
        session_dir / "sentences" / "wav" / d / f"._{u}.wav",
        session_dir / "sentences" / "ForcedAlignment" / d / f"._{u}.wdseg",
    ]
    if video:
        sidecars.append(session_dir / "dialog" / "avi" / "DivX" / f"._{d}.avi")
    for path in ds_store:
        writer.bytes_(path, ds_store_bytes())
    for path in sidecars:
        writer.bytes_(path, appledouble_bytes())
    # What unzipping an archive made on macOS leaves: a mirror tree of sidecars, Session folder included.
    mirror = out / MACOSX_DIR / release.name / f"Session{first.session}" / "dialog"
    for name in (f"._{d}.txt",):
        writer.bytes_(mirror / "EmoEvaluation" / name, appledouble_bytes())
        writer.bytes_(mirror / "transcriptions" / name, appledouble_bytes())
    return ds_store + sidecars


def expected_rejects(dialogues: list[SynthDialogue], junk_paths: list[Path], junk: bool) -> dict[str, int]:
    """The rows a scan's ``rejects.parquet`` must hold per reason (reasons with none left out)."""
    expected = Counter()
    expected[R.MACOS_JUNK] = len(junk_paths) + (1 if junk else 0)  # the __MACOSX folder is one row
    expected[R.XX_SEGMENT] = sum(d.xx_lines for d in dialogues)
    expected[R.COMMENT_LINE] = sum(d.comment_lines for d in dialogues)
    return {reason: count for reason, count in sorted(expected.items()) if count}


def ds_store_bytes() -> bytes:
    """A plausible ``.DS_Store``: the Buddy-allocator magic, then padding (6148 bytes, as Finder writes)."""
    return DS_STORE_MAGIC + b"\x00\x00\x10\x00\x00\x00\x08\x00" + bytes(6148 - 16)


def appledouble_bytes() -> bytes:
    """A 4096-byte AppleDouble sidecar: magic, version, filler, two entry descriptors, padding."""
    header = APPLEDOUBLE_MAGIC + b"Mac OS X        " + (2).to_bytes(2, "big")
    entries = (9).to_bytes(4, "big") + (50).to_bytes(4, "big") + (3698).to_bytes(4, "big")
    entries += (2).to_bytes(4, "big") + (3748).to_bytes(4, "big") + (348).to_bytes(4, "big")
    body = header + entries + b"TEXTR*ch" + bytes(APPLEDOUBLE_SIZE)
    return body[:APPLEDOUBLE_SIZE]
