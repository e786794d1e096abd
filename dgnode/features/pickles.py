"""Import the standard MERC feature pickles (MMGCN/DialogueRNN, COSMIC) into a feature store.

Pickles run code while they load: a ``REDUCE`` opcode calls whatever global the file names, so
``pickle.load`` on a downloaded file is arbitrary code execution. :func:`restricted_load` uses
an unpickler whose ``find_class`` resolves only builtin containers and the numpy entry points
that rebuild arrays, dtypes and scalars, from a fixed table of objects (it imports nothing the
file names). Any other global is refused *before* it is resolved, so nothing in the file runs.

Formats (``dialogue id -> per-utterance list`` dictionaries):

* ``mmgcn``: the MMGCN/DialogueRNN 9-tuple ``videoIDs, videoSpeakers, videoLabels, videoText,
  videoAudio, videoVisual, videoSentence, trainVid, testVid`` (IEMOCAP dims: text 100,
  audio 1582, visual 342). MMGCN's MELD file has a 10th item, which MMGCN's loader ignores
  and so does this one.
  There is no validation split: :func:`carve_validation` moves a deterministic 10% of the
  training dialogues to ``valid``.
* ``cosmic``: COSMIC's RoBERTa features ``speakers, labels, roberta1, roberta2, roberta3,
  roberta4, sentences, trainIds, testIds, validIds`` (1024-d, text only). The MELD file has
  ``speakers, emotion_labels, sentiment_labels, roberta1..4, sentences, trainIds, testIds,
  validIds``. ``text_from`` picks the text vector: one of ``roberta1..4`` (default ``roberta1``)
  or ``mean``, the average of the four.

Speakers come as letters (``"M"``/``"F"``) or one-hot vectors; IEMOCAP letters become the
corpus-wide name ``Ses0N.<letter>``, one-hot vectors the index of their 1. Labels keep their
index; the label names come from ``dgnode/data/<dataset>_structure.json``.
"""

from __future__ import annotations

import _compat_pickle
import hashlib
import json
import math
import pickle
import re
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from dgnode.errors import InputError
from dgnode.features.store import MODALITIES, SPLITS, FeatureStore, StoreMetadata

PickleFormat = Literal["mmgcn", "cosmic"]
Dataset = Literal["iemocap", "meld"]
FORMATS = ("mmgcn", "cosmic")
DATASETS = ("iemocap", "meld")
COSMIC_TEXT_CHOICES = ("roberta1", "roberta2", "roberta3", "roberta4", "mean")
VALID_FRACTION = 0.1
DATA_DIR = Path(__file__).resolve().parents[1] / "data"
IEMOCAP_DIALOG_RE = re.compile(r"^Ses(0[1-5])([FM])_(impro0[1-8][ab]?|script0[1-3]_[1-3]b?)$")


# -- restricted unpickling -------------------------------------------------------------------
def _allowed_globals() -> dict[tuple[str, str], Any]:
    import _codecs

    from numpy._core import multiarray, numeric

    allowed: dict[tuple[str, str], Any] = {
        ("builtins", name): obj
        for name, obj in {
            "dict": dict, "list": list, "tuple": tuple, "set": set, "frozenset": frozenset,
            "bytes": bytes, "bytearray": bytearray, "complex": complex,
        }.items()
    }
    # Python 3 pickles of bytes at protocol < 3 are `_codecs.encode(text, "latin1")`.
    allowed[("_codecs", "encode")] = _codecs.encode
    allowed[("collections", "OrderedDict")] = OrderedDict
    allowed[("collections", "defaultdict")] = defaultdict
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    # numpy < 2 wrote `numpy.core.*`, numpy >= 2 writes `numpy._core.*`: same functions.
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer  # protocol 5
    return allowed


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside the allowlist; carries ``module.name``."""

    def __init__(self, qualified_name: str) -> None:
        super().__init__(qualified_name)
        self.qualified_name = qualified_name


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only builtin containers, numbers, strings and numpy arrays."""

    _allowed = None

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 pickles say `__builtin__.list`, `copy_reg...`: map to Python 3 names the way
        # the default find_class does (overriding it skips that step).
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if RestrictedUnpickler._allowed is None:
            RestrictedUnpickler._allowed = _allowed_globals()
        try:
            return RestrictedUnpickler._allowed[(module, name)]
        except KeyError:
            raise RefusedGlobal(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not supported")


def restricted_load(path: str | Path, encoding: str = "latin1") -> Any:
    """Unpickle ``path`` allowing only containers and arrays; ``latin1`` reads Python 2 pickles.

    Raises :class:`InputError` naming the file: for a refused global (with its ``module.name``),
    a truncated or corrupt file, or a missing one.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return RestrictedUnpickler(handle, encoding=encoding).load()
    except FileNotFoundError:
        raise InputError("pickle file not found", path=str(path)) from None
    except RefusedGlobal as refused:
        raise InputError(
            f"refused to load global {refused.qualified_name!r}: this pickle needs more than builtin "
            "containers, numbers, strings and numpy arrays (loading it would construct objects or call "
            "code it names), and dgnode only reads pickles made of containers and arrays",
            path=str(path),
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, OverflowError, MemoryError) as error:
        raise InputError(f"not a readable pickle ({type(error).__name__}: {error})", path=str(path)) from None


# -- parsing into dialogues --------------------------------------------------------------------
@dataclass
class _Dialogue:
    dialog_id: str
    split: str
    utt_ids: list[str] | None
    speakers: list[str]
    labels: list[int | None]
    features: dict[str, np.ndarray]


@dataclass
class ImportReport:
    """What an import wrote; ``skipped_dialogues`` were in the file but in no split."""

    path: str
    format: str
    dataset: str
    store: str
    dims: dict[str, int]
    dialogues: dict[str, int]
    utterances: dict[str, int]
    rows_written: int
    skipped_dialogues: list[str] = field(default_factory=list)
    carved_valid: list[str] = field(default_factory=list)
    label_counts: dict[str, int] = field(default_factory=dict)


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


def label_names_for(dataset: str) -> list[str]:
    """Class names of a dataset, from its structure file in ``dgnode/data``."""
    if dataset not in DATASETS:
        raise InputError(f"unknown dataset {dataset!r}; expected one of {list(DATASETS)}")
    return list(json.loads((DATA_DIR / f"{dataset}_structure.json").read_text(encoding="utf-8"))["labels"])


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


def _infer_dataset(ids: list, path: Path) -> str:
    names = [str(i) for i in ids]
    if names and all(IEMOCAP_DIALOG_RE.match(n) for n in names):
        return "iemocap"
    if names and all(re.fullmatch(r"\d+", n) for n in names):
        return "meld"
    raise InputError(
        f"cannot tell the dataset from dialogue ids such as {names[:3]}; pass --dataset iemocap or meld", path=str(path)
    )


def _speaker_name(value: Any, dialog_id: str, index: int, dataset: str, path: Path) -> str:
    if isinstance(value, bytes):
        value = value.decode("latin1")
    if isinstance(value, str):
        letter = value.strip()
        if not letter:
            raise InputError(f"dialogue {dialog_id}: utterance {index} has an empty speaker", path=str(path))
        match = IEMOCAP_DIALOG_RE.match(dialog_id) if dataset == "iemocap" else None
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


def _parse(
    path: Path, fmt: str, obj: Any, dataset: str | None, text_from: str
) -> tuple[str, list[_Dialogue], list[str], list[str]]:
    """-> (dataset, dialogues, skipped dialogue ids, carved valid ids)."""
    if not isinstance(obj, (tuple, list)):
        raise InputError(f"a {fmt} pickle holds a tuple, this one holds a {type(obj).__name__}", path=str(path))
    if fmt == "mmgcn":
        expected = "9 items (videoIDs, videoSpeakers, videoLabels, videoText, videoAudio, videoVisual, videoSentence, trainVid, testVid)"
        if len(obj) == 10 and dataset is None and isinstance(obj[2], dict):
            dataset = _infer_dataset(list(obj[2]), path)
        if len(obj) == 10 and dataset == "meld":
            obj = obj[:9]  # MMGCN's MELD file has a 10th item its own loader discards
        if len(obj) != 9:
            raise InputError(f"mmgcn pickle has {len(obj)} items, expected {expected}", path=str(path))
        ids, speakers, labels, text, audio, visual, _sentences, train, test = obj
        labels = _require_dict(labels, "videoLabels", path)
        sources = {"text": ("videoText", _require_dict(text, "videoText", path)),
                   "audio": ("videoAudio", _require_dict(audio, "videoAudio", path)),
                   "vision": ("videoVisual", _require_dict(visual, "videoVisual", path))}
        utt_table = _require_dict(ids, "videoIDs", path)
        speakers = _require_dict(speakers, "videoSpeakers", path)
        split_ids = {"train": _id_list(train, "trainVid", path), "test": _id_list(test, "testVid", path)}
    elif fmt == "cosmic":
        expected = "10 items (speakers, labels, roberta1, roberta2, roberta3, roberta4, sentences, trainIds, testIds, validIds)"
        if len(obj) == 11 and dataset is None and isinstance(obj[1], dict):
            dataset = _infer_dataset(list(obj[1]), path)
        if len(obj) == 11 and dataset == "meld":
            obj = (obj[0], obj[1], *obj[3:])  # COSMIC's MELD file: emotion, then sentiment labels
        if len(obj) != 10:
            raise InputError(f"cosmic pickle has {len(obj)} items, expected {expected}", path=str(path))
        speakers, labels, r1, r2, r3, r4, _sentences, train, test, valid = obj
        labels = _require_dict(labels, "labels", path)
        speakers = _require_dict(speakers, "speakers", path)
        layers = {f"roberta{i + 1}": _require_dict(r, f"roberta{i + 1}", path) for i, r in enumerate((r1, r2, r3, r4))}
        if text_from not in COSMIC_TEXT_CHOICES:
            raise InputError(f"text_from must be one of {list(COSMIC_TEXT_CHOICES)}, got {text_from!r}")
        sources = {"text": (text_from, layers)}
        utt_table = None
        split_ids = {"train": _id_list(train, "trainIds", path), "valid": _id_list(valid, "validIds", path),
                     "test": _id_list(test, "testIds", path)}
    else:
        raise InputError(f"unknown pickle format {fmt!r}; expected one of {list(FORMATS)}", path=str(path))

    if dataset is None:
        dataset = _infer_dataset(list(labels), path)
    num_classes = len(label_names_for(dataset))
    carved: list[str] = []
    if "valid" not in split_ids:
        by_name = {str(d): d for d in split_ids["train"]}
        carved = carve_validation(list(by_name))
        carved_set = set(carved)
        split_ids["valid"] = [by_name[d] for d in carved]
        split_ids["train"] = [d for d in split_ids["train"] if str(d) not in carved_set]
    assignment = _assign_splits(split_ids, path)
    skipped = sorted((str(d) for d in labels if d not in assignment), key=str)

    dialogues = []
    for raw_id in tqdm(list(assignment), desc=f"reading {path.name}", unit="dialogue", leave=False, disable=None):
        dialog_id = str(raw_id)
        dialog_labels = list(_entry(labels, "labels" if fmt == "cosmic" else "videoLabels", raw_id, path))
        n = len(dialog_labels)
        if n == 0:
            raise InputError(f"dialogue {dialog_id} has no utterances", path=str(path))
        dialog_speakers = list(_entry(speakers, "speakers" if fmt == "cosmic" else "videoSpeakers", raw_id, path))
        if len(dialog_speakers) != n:
            raise InputError(f"dialogue {dialog_id}: {len(dialog_speakers)} speakers for {n} labels", path=str(path))
        features = {}
        for modality, (source, table) in sources.items():
            if fmt == "cosmic":
                chosen = [f"roberta{i}" for i in range(1, 5)] if source == "mean" else [source]
                stack = [_matrix(_entry(table[name], name, raw_id, path), dialog_id, name, n, path) for name in chosen]
                features[modality] = np.mean(stack, axis=0, dtype=np.float64).astype(np.float32) if len(stack) > 1 else stack[0]
            else:
                features[modality] = _matrix(_entry(table, source, raw_id, path), dialog_id, source, n, path)
        if utt_table is not None:
            given = [u.decode("latin1") if isinstance(u, bytes) else u for u in _entry(utt_table, "videoIDs", raw_id, path)]
            if len(given) != n:
                raise InputError(f"dialogue {dialog_id}: videoIDs lists {len(given)} utterances for {n} labels", path=str(path))
        else:
            given = None
        dialogues.append(
            _Dialogue(
                dialog_id=dialog_id,
                split=assignment[raw_id],
                utt_ids=given,  # resolved below, once uniqueness over the whole file is known
                speakers=[_speaker_name(s, dialog_id, i, dataset, path) for i, s in enumerate(dialog_speakers)],
                labels=[_label(v, dialog_id, i, num_classes, path) for i, v in enumerate(dialog_labels)],
                features=features,
            )
        )

    for modality in sources:
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
    return dataset, dialogues, skipped, carved


def _resolve_utt_ids(dialogues: list[_Dialogue]) -> None:
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


# -- writing -----------------------------------------------------------------------------------
def import_pickle(
    path: str | Path,
    fmt: PickleFormat,
    store_path: str | Path,
    dataset: Dataset | None = None,
    text_from: str = "roberta1",
) -> ImportReport:
    """Read a standard feature pickle with :func:`restricted_load` and append it to a store.

    ``dataset`` (``iemocap``/``meld``) is inferred from the dialogue ids when omitted. Re-running
    writes nothing new (rows already stored are skipped). Raises :class:`InputError` naming the
    file, and the dialogue where one is at fault, for anything malformed.
    """
    import pandas as pd

    path = Path(path)
    if fmt not in FORMATS:
        raise InputError(f"unknown pickle format {fmt!r}; expected one of {list(FORMATS)}", path=str(path))
    if dataset is not None and dataset not in DATASETS:
        raise InputError(f"unknown dataset {dataset!r}; expected one of {list(DATASETS)}")
    obj = restricted_load(path)
    dataset, dialogues, skipped, carved = _parse(path, fmt, obj, dataset, text_from)
    if not dialogues:
        raise InputError("the pickle's split lists name no dialogues", path=str(path))
    modalities = [m for m in MODALITIES if m in dialogues[0].features]
    dims = {m: int(dialogues[0].features[m].shape[1]) for m in modalities}
    label_names = label_names_for(dataset)
    preprocessing: dict[str, Any] = {"format": fmt, "dataset": dataset}
    if carved:
        preprocessing["valid_carve"] = {
            "rule": "floor(0.1 * n_train + 0.5) training dialogues with the smallest sha256(dialog_id)",
            "dialogues": carved,
        }
    if fmt == "cosmic":
        preprocessing["text_from"] = text_from
    metadata = StoreMetadata(
        model={"mmgcn": "mmgcn-features", "cosmic": "cosmic-roberta"}[fmt],
        dims=dims,
        label_names=label_names,
        source=f"{fmt}-pickle",
        preprocessing=preprocessing,
        extra={"pickle": path.name, "pickle_sha256": _sha256(path)},
    )
    store = FeatureStore.create(store_path, metadata)
    frame = pd.DataFrame(
        {
            "dialog_id": [d.dialog_id for d in dialogues for _ in d.labels],
            "utt_id": [u for d in dialogues for u in d.utt_ids],
            "order": [i for d in dialogues for i in range(len(d.labels))],
            "speaker": [s for d in dialogues for s in d.speakers],
            "label": pd.array([v for d in dialogues for v in d.labels], dtype="Int32"),
            "split": [d.split for d in dialogues for _ in d.labels],
            **{m: list(np.concatenate([d.features[m] for d in dialogues])) for m in modalities},
        }
    )
    written = store.append(frame)
    label_counts = Counter(label_names[v] if v is not None else "unlabelled" for d in dialogues for v in d.labels)
    return ImportReport(
        path=str(path),
        format=fmt,
        dataset=dataset,
        store=str(store.root),
        dims=dims,
        dialogues={s: sum(d.split == s for d in dialogues) for s in SPLITS},
        utterances={s: sum(len(d.labels) for d in dialogues if d.split == s) for s in SPLITS},
        rows_written=written,
        skipped_dialogues=skipped,
        carved_valid=carved,
        label_counts={name: label_counts[name] for name in [*label_names, "unlabelled"] if label_counts[name]},
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
