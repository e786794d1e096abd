"""Names in the raw MELD release: splits, CSV files, clip folders and archives, clip names, ids.

The release (``MELD.Raw/``) holds per split a CSV of utterances and a ``.tar.gz`` of clips, one
MP4 per utterance named ``dia{Dialogue_ID}_utt{Utterance_ID}.mp4``:

=========  ======================  ==============  ================================  ==========
split      CSV                     archive         folder the archive unpacks to     manifest
=========  ======================  ==============  ================================  ==========
``train``  ``train_sent_emo.csv``  ``train.tar.gz`` ``train_splits/``                ``train``
``dev``    ``dev_sent_emo.csv``    ``dev.tar.gz``  ``dev_splits_complete/``          ``valid``
``test``   ``test_sent_emo.csv``   ``test.tar.gz`` ``output_repeated_splits_test/``  ``test``
=========  ======================  ==============  ================================  ==========

Some test clips carry a ``final_videos_test`` prefix (``final_videos_testdia101_utt0.mp4``).

**Ids.** ``Dialogue_ID`` restarts at 0 in every split, so it does not name a dialogue alone. The
manifest's ``dialog_id`` is the number the standard feature pickles (MMGCN, COSMIC) and
``dgnode/data/meld_structure.json`` use: the ``Dialogue_ID`` plus the split's offset
(:data:`DIALOGUE_OFFSETS`: train 0, dev 1039, test 1153), so stores made from the raw release and
from a pickle name the same dialogues alike. ``utt_id`` is ``{split}_dia{D}_utt{U}`` (the clip's
name with its split): ``Utterance_ID`` has gaps in some dialogues (the pickles number utterances
by position instead), so a name of the pickles' form would pair different utterances.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "ARCHIVES", "CLIP_FOLDERS", "CLIP_PREFIX", "CLIP_RE", "CSV_COLUMNS", "CSV_FILES", "ClipName", "DIALOGUE_LIMITS",
    "DIALOGUE_OFFSETS", "MANIFEST_SPLIT", "MAX_UTTERANCE_S", "MELD_SPLITS", "clip_name", "dialog_id_of", "parse_clip_name",
    "split_dialogue_of", "utt_id_of",
]

MELD_SPLITS = ("train", "dev", "test")
MANIFEST_SPLIT = {"train": "train", "dev": "valid", "test": "test"}
CSV_FILES = {"train": "train_sent_emo.csv", "dev": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}
ARCHIVES = {"train": "train.tar.gz", "dev": "dev.tar.gz", "test": "test.tar.gz"}
CLIP_FOLDERS = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}
CSV_COLUMNS = ("Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID", "Season",
               "Episode", "StartTime", "EndTime")
CLIP_PREFIX = "final_videos_test"
CLIP_RE = re.compile(rf"^({CLIP_PREFIX})?dia(\d+)_utt(\d+)\.mp4$")
# The standard numbering (train dialogues 0-1038, no 60; dev 0-113; test 0-279).
DIALOGUE_OFFSETS = {"train": 0, "dev": 1039, "test": 1153}
DIALOGUE_LIMITS = {"train": 1039, "dev": 114, "test": 280}  # Dialogue_ID < limit fits the numbering
# No utterance is read longer (dgnode.corpus.meld_scan): the longest real one spans 28.5 s (dev
# dia74_utt19) once the overlong clips (minutes) are set aside.
MAX_UTTERANCE_S = 30.0


@dataclass(frozen=True)
class ClipName:
    """The parts of a clip file name."""

    dialogue: int
    utterance: int
    prefixed: bool  # carries the ``final_videos_test`` prefix


def parse_clip_name(name: str) -> ClipName | None:
    """``dia3_utt7.mp4`` -> ``ClipName(3, 7, False)``; ``None`` for any other name."""
    match = CLIP_RE.match(name)
    if match is None:
        return None
    return ClipName(int(match.group(2)), int(match.group(3)), match.group(1) is not None)


def clip_name(dialogue: int, utterance: int, prefixed: bool = False) -> str:
    return f"{CLIP_PREFIX if prefixed else ''}dia{dialogue}_utt{utterance}.mp4"


def dialog_id_of(split: str, dialogue: int) -> str:
    """The manifest's ``dialog_id`` of a split's ``Dialogue_ID`` (see the module docstring)."""
    return str(DIALOGUE_OFFSETS[split] + dialogue)


def utt_id_of(split: str, dialogue: int, utterance: int) -> str:
    return f"{split}_dia{dialogue}_utt{utterance}"


def split_dialogue_of(dialog_id: str | int) -> tuple[str, int]:
    """``(split, Dialogue_ID)`` of a standard dialogue number (``"1149"`` -> ``("dev", 110)``)."""
    number = int(dialog_id)
    for split in reversed(MELD_SPLITS):
        if number >= DIALOGUE_OFFSETS[split]:
            dialogue = number - DIALOGUE_OFFSETS[split]
            if dialogue >= DIALOGUE_LIMITS[split]:
                raise ValueError(f"dialogue number {number} is beyond the standard numbering")
            return split, dialogue
    raise ValueError(f"dialogue number {number} is negative")
