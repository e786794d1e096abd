"""The standard IEMOCAP split: Sessions 1-4 train/valid, Session 5 test.

``valid`` holds the 12 training-session dialogues listed as validation in the packaged
structure file ``dgnode/data/iemocap_structure.json`` (the split of the MERC literature).
A dialogue id of Sessions 1-4 that the structure file does not know (a corpus with extra or
renamed recordings) goes to ``valid`` when the first 8 bytes of ``sha256(dialog_id)``, read as a
big-endian integer, are divisible by 10 -- a fixed, deterministic ~10 % -- and to ``train``
otherwise.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

__all__ = [
    "HASH_VALID_MODULUS", "SPLITS", "STRUCTURE_PATH", "TEST_SESSION", "hash_valid", "known_dialogues",
    "standard_split",
]

STRUCTURE_PATH = Path(__file__).resolve().parents[1] / "data" / "iemocap_structure.json"
TEST_SESSION = 5
HASH_VALID_MODULUS = 10
SPLITS = ("train", "valid", "test")


@lru_cache(maxsize=1)
def _structure_splits() -> dict[str, str]:
    structure = json.loads(STRUCTURE_PATH.read_text(encoding="utf-8"))
    return {dialog: split for split, dialogs in structure["splits"].items() for dialog in dialogs}


def known_dialogues() -> frozenset[str]:
    """Dialogue ids of the real release (the packaged structure file)."""
    return frozenset(_structure_splits())


def hash_valid(dialog_id: str) -> bool:
    """The deterministic ~10 % of unknown training dialogues that go to ``valid``."""
    digest = hashlib.sha256(dialog_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % HASH_VALID_MODULUS == 0


def standard_split(dialog_id: str, session: int) -> str:
    """``train``, ``valid`` or ``test`` for a dialogue of ``session`` (1-5)."""
    if session == TEST_SESSION:
        return "test"
    known = _structure_splits().get(dialog_id)
    if known is not None and known != "test":
        return known
    return "valid" if hash_valid(dialog_id) else "train"
