"""The layouts of the standard MERC feature pickles, and the datasets they hold.

Formats (``dialogue id -> per-utterance list`` dictionaries):

* ``mmgcn``: the MMGCN/DialogueRNN 9-tuple ``videoIDs, videoSpeakers, videoLabels, videoText,
  videoAudio, videoVisual, videoSentence, trainVid, testVid`` (IEMOCAP dims: text 100,
  audio 1582, visual 342). MMGCN's MELD file has a 10th item, which MMGCN's loader ignores
  and so does this one. There is no validation split (see
  :func:`dgnode.features.pickle_dialogues.read_dialogues`: the dataset's standard validation
  dialogues, else a carve).
* ``cosmic``: COSMIC's RoBERTa features ``speakers, labels, roberta1, roberta2, roberta3,
  roberta4, sentences, trainIds, testIds, validIds`` (1024-d, text only). The MELD file has
  ``speakers, emotion_labels, sentiment_labels, roberta1..4, sentences, trainIds, testIds,
  validIds``. ``text_from`` picks the text vector: one of ``roberta1..4`` (default ``roberta1``)
  or ``mean``, the average of the four.

:func:`unpack` checks a loaded tuple against its format and names its tables by role
(:class:`PickleLayout`), so reading the dialogues out of it is the same for every format.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from dgnode.corpus.names import DIALOG_RE
from dgnode.errors import InputError

__all__ = [
    "COSMIC_TEXT_CHOICES",
    "DATASETS",
    "FORMATS",
    "CosmicText",
    "Dataset",
    "PickleFormat",
    "PickleLayout",
    "infer_dataset",
    "label_names_for",
    "standard_valid_ids",
    "structure_path",
    "unpack",
]

PickleFormat = Literal["mmgcn", "cosmic"]
Dataset = Literal["iemocap", "meld"]
CosmicText = Literal["roberta1", "roberta2", "roberta3", "roberta4", "mean"]
FORMATS: tuple[str, ...] = get_args(PickleFormat)
DATASETS: tuple[str, ...] = get_args(Dataset)
COSMIC_TEXT_CHOICES: tuple[str, ...] = get_args(CosmicText)
_DATA_DIR = Path(__file__).resolve().parents[1] / "data"
_MMGCN_ITEMS = "9 items (videoIDs, videoSpeakers, videoLabels, videoText, videoAudio, videoVisual, videoSentence, trainVid, testVid)"
_COSMIC_ITEMS = "10 items (speakers, labels, roberta1, roberta2, roberta3, roberta4, sentences, trainIds, testIds, validIds)"


@dataclass
class PickleLayout:
    """A pickle's tables by role, with the names the format gives them (for error messages)."""

    dataset: str | None  # when the file's shape tells (a MELD variant) or the caller did
    labels: dict  # dialogue id -> per-utterance labels
    labels_name: str
    speakers: dict  # dialogue id -> per-utterance speakers
    speakers_name: str
    sources: dict[str, list[tuple[str, dict]]]  # modality -> (name, table) of each vector; several are averaged
    utt_ids: dict | None  # dialogue id -> utterance ids, when the format has them
    split_ids: dict[str, list]  # split -> dialogue ids as the file spells them


def unpack(path: Path, fmt: str, obj: Any, dataset: str | None, text_from: str) -> PickleLayout:
    """Check ``obj`` (the unpickled file) against format ``fmt`` and name its tables."""
    if not isinstance(obj, (tuple, list)):
        raise InputError(f"a {fmt} pickle holds a tuple, this one holds a {type(obj).__name__}", path=str(path))
    if fmt == "mmgcn":
        return _unpack_mmgcn(path, obj, dataset)
    if fmt == "cosmic":
        return _unpack_cosmic(path, obj, dataset, text_from)
    raise InputError(f"unknown pickle format {fmt!r}; expected one of {list(FORMATS)}", path=str(path))


def _unpack_mmgcn(path: Path, obj: tuple | list, dataset: str | None) -> PickleLayout:
    if len(obj) == 10 and dataset is None and isinstance(obj[2], dict):
        dataset = infer_dataset(list(obj[2]), path)
    if len(obj) == 10 and dataset == "meld":
        obj = obj[:9]  # MMGCN's MELD file has a 10th item its own loader discards
    if len(obj) != 9:
        raise InputError(f"mmgcn pickle has {len(obj)} items, expected {_MMGCN_ITEMS}", path=str(path))
    ids, speakers, labels, text, audio, visual, _sentences, train, test = obj
    labels = _require_dict(labels, "videoLabels", path)
    sources = {"text": [("videoText", _require_dict(text, "videoText", path))],
               "audio": [("videoAudio", _require_dict(audio, "videoAudio", path))],
               "vision": [("videoVisual", _require_dict(visual, "videoVisual", path))]}
    utt_ids = _require_dict(ids, "videoIDs", path)
    speakers = _require_dict(speakers, "videoSpeakers", path)
    split_ids = {"train": _id_list(train, "trainVid", path), "test": _id_list(test, "testVid", path)}
    return PickleLayout(dataset, labels, "videoLabels", speakers, "videoSpeakers", sources, utt_ids, split_ids)


def _unpack_cosmic(path: Path, obj: tuple | list, dataset: str | None, text_from: str) -> PickleLayout:
    if len(obj) == 11 and dataset is None and isinstance(obj[1], dict):
        dataset = infer_dataset(list(obj[1]), path)
    if len(obj) == 11 and dataset == "meld":
        obj = (obj[0], obj[1], *obj[3:])  # COSMIC's MELD file: emotion, then sentiment labels
    if len(obj) != 10:
        raise InputError(f"cosmic pickle has {len(obj)} items, expected {_COSMIC_ITEMS}", path=str(path))
    speakers, labels, r1, r2, r3, r4, _sentences, train, test, valid = obj
    labels = _require_dict(labels, "labels", path)
    speakers = _require_dict(speakers, "speakers", path)
    layers = {f"roberta{i + 1}": _require_dict(r, f"roberta{i + 1}", path) for i, r in enumerate((r1, r2, r3, r4))}
    if text_from not in COSMIC_TEXT_CHOICES:
        raise InputError(f"text_from must be one of {list(COSMIC_TEXT_CHOICES)}, got {text_from!r}")
    chosen = list(layers) if text_from == "mean" else [text_from]
    split_ids = {"train": _id_list(train, "trainIds", path), "valid": _id_list(valid, "validIds", path),
                 "test": _id_list(test, "testIds", path)}
    return PickleLayout(dataset, labels, "labels", speakers, "speakers", {"text": [(n, layers[n]) for n in chosen]},
                        None, split_ids)


def structure_path(dataset: str) -> Path:
    """The packaged structure file of a dataset (``dgnode/data/<dataset>_structure.json``)."""
    if dataset not in DATASETS:
        raise InputError(f"unknown dataset {dataset!r}; expected one of {list(DATASETS)}")
    return _DATA_DIR / f"{dataset}_structure.json"


def label_names_for(dataset: str) -> list[str]:
    """Class names of a dataset, from its structure file in ``dgnode/data``."""
    return list(json.loads(structure_path(dataset).read_text(encoding="utf-8"))["labels"])


def standard_valid_ids(dataset: str) -> list[str]:
    """The dataset's standard validation dialogues, as the pickles spell their ids: the ``valid``
    split of its structure file (IEMOCAP's 12 training-session dialogues of the MERC literature,
    MELD's 114 dev dialogues, numbered 1039-1152)."""
    return [str(d) for d in json.loads(structure_path(dataset).read_text(encoding="utf-8"))["splits"]["valid"]]


def infer_dataset(ids: list, path: Path) -> str:
    """``iemocap`` when every dialogue id is an IEMOCAP one, ``meld`` when every one is a number."""
    names = [str(i) for i in ids]
    if names and all(DIALOG_RE.match(n) for n in names):
        return "iemocap"
    if names and all(re.fullmatch(r"\d+", n) for n in names):
        return "meld"
    raise InputError(
        f"cannot tell the dataset from dialogue ids such as {names[:3]}; pass --dataset iemocap or meld", path=str(path)
    )


def _require_dict(value: Any, name: str, path: Path) -> dict:
    if not isinstance(value, dict):
        raise InputError(f"{name} should be a dict of dialogue id -> per-utterance values, got {type(value).__name__}", path=str(path))
    return value


def _id_list(value: Any, name: str, path: Path) -> list:
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if isinstance(value, (list, tuple, np.ndarray)):
        return list(value)
    if isinstance(value, dict):
        return list(value)
    raise InputError(f"{name} should be a list or set of dialogue ids, got {type(value).__name__}", path=str(path))
