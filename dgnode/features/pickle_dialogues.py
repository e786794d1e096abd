"""Dialogues read out of an unpacked feature pickle, every value checked.

Speakers come as letters (``"M"``/``"F"``) or one-hot vectors; IEMOCAP letters become the
corpus-wide name ``Ses0N.<letter>``, one-hot vectors the index of their 1. Labels keep their
index (``-1`` and ``None`` are unlabelled). A file without a validation split (MMGCN's) gets the
dataset's standard validation dialogues where its training list holds them
(:func:`~dgnode.features.pickle_formats.standard_valid_ids`: IEMOCAP's 12, MELD's dev set, which
MMGCN's MELD file lists as training dialogues), else :func:`carve_validation`; which rule was used
is :attr:`PickleDialogues.valid_rule`. Errors name the file and the dialogue at fault.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dgnode.corpus.names import DIALOG_RE
from dgnode.errors import InputError
from dgnode.features.pickle_formats import PickleLayout, infer_dataset, label_names_for, standard_valid_ids

__all__ = ["VALID_FRACTION", "PickleDialogue", "PickleDialogues", "carve_validation", "read_dialogues"]

VALID_FRACTION = 0.1
_log = logging.getLogger(__name__)


@dataclass
class PickleDialogue:
    """One dialogue of the file, ready for the store."""

    dialog_id: str
    split: str
    utt_ids: list[str] | None
    speakers: list[str]
    labels: list[int | None]
    features: dict[str, np.ndarray]  # modality -> (utterances, dim) float32


@dataclass
class PickleDialogues:
    """What :func:`read_dialogues` found: ``skipped`` were in the file but in no split."""

    dataset: str
    dialogues: list[PickleDialogue]
    skipped: list[str]
    carved_valid: list[str]  # training dialogues the valid split was taken from (empty: the file's own)
    valid_rule: str = "file"  # "file", "standard" (the dataset's dialogues) or "hash" (carve_validation)


def carve_validation(train_ids: list[str], fraction: float = VALID_FRACTION) -> list[str]:
    """The training dialogues that become ``valid`` when a file has no validation split.

    ``k = floor(fraction * n + 0.5)`` dialogues (12 of IEMOCAP's 120), chosen as the ``k``
    smallest ``sha256(dialog_id)`` hex digests (ties by id). The choice depends only on the ids,
    not on their order in the file, and a dialogue's fate does not depend on which others exist
    beyond the count. Returned sorted.
    """
    k = math.floor(fraction * len(train_ids) + 0.5)
    ranked = sorted(train_ids, key=lambda d: (hashlib.sha256(d.encode("utf-8")).hexdigest(), d))
    return sorted(ranked[:k])


def read_dialogues(path: Path, layout: PickleLayout) -> PickleDialogues:
    """The dialogues named by the file's split lists, in split-list order."""
    dataset = layout.dataset if layout.dataset is not None else infer_dataset(list(layout.labels), path)
    num_classes = len(label_names_for(dataset))
    split_ids = dict(layout.split_ids)
    carved: list[str] = []
    valid_rule = "file"
    if "valid" not in split_ids:
        by_name = {str(d): d for d in split_ids["train"]}
        carved = sorted(d for d in standard_valid_ids(dataset) if d in by_name)
        valid_rule = "standard" if carved else "hash"
        if not carved:
            carved = carve_validation(list(by_name))
        _log.info("%s has no validation split: %d %s become valid", path.name, len(carved),
                  f"standard {dataset} validation dialogues" if valid_rule == "standard"
                  else "training dialogues carved by sha256")
        carved_set = set(carved)
        split_ids["valid"] = [by_name[d] for d in carved]
        split_ids["train"] = [d for d in split_ids["train"] if str(d) not in carved_set]
    assignment = _assign_splits(split_ids, path)
    skipped = sorted((str(d) for d in layout.labels if d not in assignment), key=str)

    dialogues = []
    for raw_id in tqdm(list(assignment), desc=f"reading {path.name}", unit="dialogue", leave=False, disable=None):
        dialog_id = str(raw_id)
        dialog_labels = list(_entry(layout.labels, layout.labels_name, raw_id, path))
        n = len(dialog_labels)
        if n == 0:
            raise InputError(f"dialogue {dialog_id} has no utterances", path=str(path))
        dialog_speakers = list(_entry(layout.speakers, layout.speakers_name, raw_id, path))
        if len(dialog_speakers) != n:
            raise InputError(f"dialogue {dialog_id}: {len(dialog_speakers)} speakers for {n} labels", path=str(path))
        features = {}
        for modality, tables in layout.sources.items():
            stack = [_matrix(_entry(table, name, raw_id, path), dialog_id, name, n, path) for name, table in tables]
            features[modality] = np.mean(stack, axis=0, dtype=np.float64).astype(np.float32) if len(stack) > 1 else stack[0]
        if layout.utt_ids is not None:
            given = [u.decode("latin1") if isinstance(u, bytes) else u for u in _entry(layout.utt_ids, "videoIDs", raw_id, path)]
            if len(given) != n:
                raise InputError(f"dialogue {dialog_id}: videoIDs lists {len(given)} utterances for {n} labels", path=str(path))
        else:
            given = None
        dialogues.append(
            PickleDialogue(
                dialog_id=dialog_id,
                split=assignment[raw_id],
                utt_ids=given,  # resolved below, once uniqueness over the whole file is known
                speakers=[_speaker_name(s, dialog_id, i, dataset, path) for i, s in enumerate(dialog_speakers)],
                labels=[_label(v, dialog_id, i, num_classes, path) for i, v in enumerate(dialog_labels)],
                features=features,
            )
        )

    for modality in layout.sources:
        dims = Counter(d.features[modality].shape[1] for d in dialogues)
        if len(dims) > 1:
            common = dims.most_common(1)[0][0]
            odd = next(d for d in dialogues if d.features[modality].shape[1] != common)
            raise InputError(
                f"dialogue {odd.dialog_id}: {modality} vectors have {odd.features[modality].shape[1]} dims, "
                f"the other dialogues {common}",
                path=str(path),
            )
    _resolve_utt_ids(dialogues)
    return PickleDialogues(dataset, dialogues, skipped, carved, valid_rule)


def _speaker_name(value: Any, dialog_id: str, index: int, dataset: str, path: Path) -> str:
    if isinstance(value, bytes):
        value = value.decode("latin1")
    if isinstance(value, str):
        letter = value.strip()
        if not letter:
            raise InputError(f"dialogue {dialog_id}: utterance {index} has an empty speaker", path=str(path))
        match = DIALOG_RE.match(dialog_id) if dataset == "iemocap" else None
        if match and letter in ("F", "M"):
            return f"Ses{match.group(1)}.{letter}"
        return letter
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    vector = np.asarray(value) if isinstance(value, (list, tuple, np.ndarray)) else None
    if vector is not None and vector.ndim == 1 and vector.size and np.issubdtype(vector.dtype, np.number):
        nonzero = np.flatnonzero(vector)
        if len(nonzero) == 1 and vector[nonzero[0]] == 1:
            return str(int(nonzero[0]))
    raise InputError(
        f"dialogue {dialog_id}: utterance {index} has speaker {value!r}; expected a letter like 'M'/'F' or a one-hot vector",
        path=str(path),
    )


def _label(value: Any, dialog_id: str, index: int, num_classes: int, path: Path) -> int | None:
    if value is None:
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise InputError(f"dialogue {dialog_id}: utterance {index} has label {value!r}; expected a class index", path=str(path))
    value = int(value)
    if value == -1:
        return None
    if not 0 <= value < num_classes:
        raise InputError(
            f"dialogue {dialog_id}: utterance {index} has label {value}, outside [0, {num_classes})", path=str(path)
        )
    return value


def _matrix(value: Any, dialog_id: str, source: str, n: int, path: Path) -> np.ndarray:
    try:
        matrix = np.asarray(value, dtype=np.float32)
    except (ValueError, TypeError):
        raise InputError(f"dialogue {dialog_id}: {source} is not a numeric (utterances x dim) array", path=str(path)) from None
    if matrix.ndim != 2:
        raise InputError(f"dialogue {dialog_id}: {source} has shape {matrix.shape}, expected (utterances, dim)", path=str(path))
    if matrix.shape[0] != n:
        raise InputError(f"dialogue {dialog_id}: {source} has {matrix.shape[0]} rows but the dialogue has {n} labels", path=str(path))
    if not np.isfinite(matrix).all():
        raise InputError(f"dialogue {dialog_id}: {source} contains NaN or infinite values", path=str(path))
    return matrix


def _entry(table: dict, name: str, dialog_id: Any, path: Path) -> Any:
    try:
        return table[dialog_id]
    except KeyError:
        raise InputError(f"{name} has no entry for dialogue {dialog_id}", path=str(path)) from None


def _assign_splits(splits: dict[str, list], path: Path) -> dict[Any, str]:
    assignment: dict[Any, str] = {}
    for split, ids in splits.items():
        for dialog_id in ids:
            if dialog_id in assignment and assignment[dialog_id] != split:
                raise InputError(f"dialogue {dialog_id} is in both {assignment[dialog_id]} and {split}", path=str(path))
            assignment[dialog_id] = split
    return assignment


def _resolve_utt_ids(dialogues: list[PickleDialogue]) -> None:
    """Keep the file's utterance ids when they are unique strings, else name rows ``<dialog>_<i>``."""
    given = [u for d in dialogues for u in (d.utt_ids or [])]
    usable = (
        all(d.utt_ids is not None for d in dialogues)
        and all(isinstance(u, str) and u for u in given)
        and len(set(given)) == len(given)
    )
    for d in dialogues:
        if not usable:
            d.utt_ids = [f"{d.dialog_id}_{i:03d}" for i in range(len(d.labels))]
