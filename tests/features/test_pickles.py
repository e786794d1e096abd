"""Importing MMGCN/COSMIC pickles: exact stores, the deterministic valid carve, and refusal of code."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from numpy._core import multiarray

from dgnode.errors import InputError
from dgnode.features.dataset import load_conversations
from dgnode.features.pickle_dialogues import carve_validation
from dgnode.features.pickles import import_pickle
from dgnode.features.restricted_pickle import restricted_load
from dgnode.features.store import FeatureStore

TRAIN = [
    "Ses01F_impro01", "Ses01F_impro02", "Ses01M_script01_1", "Ses02F_impro03", "Ses02M_script02_2",
    "Ses03M_impro05a", "Ses03M_impro08b", "Ses04F_script03_1", "Ses04M_impro06", "Ses01F_script01_1b",
]
TEST = ["Ses05F_impro01", "Ses05M_script01_1b"]
UNSPLIT = "Ses05M_script03_2"
DIMS = {"videoText": 4, "videoAudio": 5, "videoVisual": 3}


def _values(dialog_index: int, n: int, dim: int, offset: float) -> np.ndarray:
    return (np.arange(n * dim, dtype=np.float32).reshape(n, dim) + 100 * dialog_index + offset) / 8


def mmgcn_tuple(as_lists: bool = False) -> tuple:
    """An IEMOCAP-style 9-tuple: dialogue k has 2 + k % 3 utterances, speakers alternate F/M."""
    tables = {name: {} for name in ("ids", "speakers", "labels", "videoText", "videoAudio", "videoVisual", "sentences")}
    for k, dialog in enumerate([*TRAIN, *TEST, UNSPLIT]):
        n = 2 + k % 3
        tables["ids"][dialog] = [f"{dialog}_{'FM'[i % 2]}{i:03d}" for i in range(n)]
        tables["speakers"][dialog] = ["FM"[i % 2] for i in range(n)]
        tables["labels"][dialog] = [(k + i) % 6 for i in range(n)]
        tables["sentences"][dialog] = [f"words {i}" for i in range(n)]
        for offset, (name, dim) in enumerate(DIMS.items()):
            matrix = _values(k, n, dim, offset)
            tables[name][dialog] = [list(map(float, row)) for row in matrix] if as_lists else list(matrix)
    return (tables["ids"], tables["speakers"], tables["labels"], tables["videoText"], tables["videoAudio"],
            tables["videoVisual"], tables["sentences"], list(TRAIN), list(TEST))


def _dump(obj, path: Path, protocol: int = 4) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def test_mmgcn_import_gives_the_exact_store_with_a_deterministic_valid_carve(tmp_path):
    report = import_pickle(_dump(mmgcn_tuple(), tmp_path / "IEMOCAP_features.pkl"), "mmgcn", tmp_path / "store")
    assert report.dataset == "iemocap"
    assert report.dims == {"text": 4, "audio": 5, "vision": 3}
    assert report.carved_valid == ["Ses04M_impro06"]  # smallest sha256 of the 10 training ids
    assert report.dialogues == {"train": 9, "valid": 1, "test": 2}
    assert report.skipped_dialogues == [UNSPLIT]
    sizes = {d: 2 + k % 3 for k, d in enumerate([*TRAIN, *TEST])}
    assert report.utterances == {"train": sum(sizes[d] for d in TRAIN) - sizes["Ses04M_impro06"],
                                 "valid": sizes["Ses04M_impro06"], "test": sizes[TEST[0]] + sizes[TEST[1]]}
    assert report.rows_written == sum(sizes.values()) == 36

    store = FeatureStore.open(tmp_path / "store")
    assert store.metadata.source == "mmgcn-pickle" and store.metadata.model == "mmgcn-features"
    assert store.metadata.label_names == ["hap", "sad", "neu", "ang", "exc", "fru"]
    assert store.metadata.preprocessing["valid_carve"]["dialogues"] == ["Ses04M_impro06"]
    assert store.metadata.extra["pickle_sha256"] == hashlib.sha256((tmp_path / "IEMOCAP_features.pkl").read_bytes()).hexdigest()
    loaded = store.load()
    frame = loaded.frame.set_index("utt_id")
    k = TRAIN.index("Ses03M_impro05a")  # n = 2 + 5 % 3 = 4
    rows = frame.loc[[f"Ses03M_impro05a_{'FM'[i % 2]}{i:03d}" for i in range(4)]]
    assert rows["order"].tolist() == [0, 1, 2, 3]
    assert rows["speaker"].tolist() == ["Ses03.F", "Ses03.M", "Ses03.F", "Ses03.M"]
    assert rows["label"].tolist() == [(k + i) % 6 for i in range(4)]
    assert set(rows["split"]) == {"train"}
    assert frame.loc["Ses04M_impro06_F000", "split"] == "valid" and frame.loc["Ses05F_impro01_F000", "split"] == "test"
    positions = [loaded.frame.index[loaded.frame["utt_id"] == u][0] for u in rows.index]
    np.testing.assert_array_equal(loaded.vectors["audio"][positions], _values(k, 4, 5, 1))
    np.testing.assert_array_equal(loaded.vectors["vision"][positions], _values(k, 4, 3, 2))

    again = import_pickle(tmp_path / "IEMOCAP_features.pkl", "mmgcn", tmp_path / "store")
    assert again.rows_written == 0 and len(store) == 36
    # The imported store is a valid conversation dataset.
    data = load_conversations(store)
    assert data.num_speakers == 2 and len(data.split("valid")) == 1


def test_valid_carve_rule_is_pinned_on_the_real_iemocap_training_dialogues(iemocap_structure_path):
    structure = json.loads(Path(iemocap_structure_path).read_text())
    train = structure["splits"]["train"] + structure["splits"]["valid"]
    carved = carve_validation(list(reversed(train)))
    assert carved == [
        "Ses01F_script01_2", "Ses01M_impro05", "Ses02M_impro08", "Ses02M_script02_1", "Ses02M_script03_1",
        "Ses03F_impro01", "Ses03M_impro07", "Ses03M_impro08a", "Ses04F_impro04", "Ses04F_script01_3",
        "Ses04M_impro06", "Ses04M_script02_1",
    ]
    assert carve_validation(train) == carved
    assert carve_validation([str(i) for i in range(4)]) == []  # floor(0.4 + 0.5) = 0


def test_mmgcn_meld_ten_tuple_with_one_hot_speakers(tmp_path):
    eye = np.eye(9, dtype=np.float32)
    ids, speakers, labels, text, audio, visual, sentences = ({} for _ in range(7))
    for dialog in range(6):
        n = 3
        ids[dialog] = list(range(n))  # MELD files number utterances per dialogue: not unique
        speakers[dialog] = [list(eye[(dialog + i) % 9]) for i in range(n)]
        labels[dialog] = [(dialog * n + i) % 7 for i in range(n)]
        text[dialog], audio[dialog], visual[dialog] = (np.full((n, d), dialog + i / 10, np.float32) for i, d in enumerate((6, 4, 2)))
        sentences[dialog] = ["hi"] * n
    sentiment = {d: [0, 1, 2] for d in range(6)}
    obj = (ids, speakers, labels, text, audio, visual, sentences, [0, 1, 2, 3, 4], [5], sentiment)
    report = import_pickle(_dump(obj, tmp_path / "meld.pkl", protocol=2), "mmgcn", tmp_path / "store")
    assert report.dataset == "meld" and report.carved_valid == [carve_validation(["0", "1", "2", "3", "4"])[0]]
    assert report.carved_valid == ["4"]
    loaded = FeatureStore.open(tmp_path / "store").load()
    assert loaded.metadata.label_names == ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]
    assert loaded.frame["utt_id"].tolist()[:3] == ["0_000", "0_001", "0_002"]
    assert loaded.frame.loc[loaded.frame["dialog_id"] == "3", "speaker"].tolist() == ["3", "4", "5"]
    assert loaded.frame.loc[loaded.frame["dialog_id"] == "4", "split"].tolist() == ["valid"] * 3
    np.testing.assert_allclose(loaded.vectors["audio"][loaded.frame["dialog_id"] == "2"], np.full((3, 4), 2.1, np.float32))


def cosmic_tuple() -> tuple:
    speakers, labels, sentences = {}, {}, {}
    layers = [{} for _ in range(4)]
    dialogs = {"train": ["Ses01F_impro01", "Ses02M_impro02"], "valid": ["Ses03F_script01_1"], "test": ["Ses05F_impro03"]}
    for k, dialog in enumerate(sum(dialogs.values(), [])):
        n = 3
        speakers[dialog] = ["M", "F", "M"]
        labels[dialog] = [k % 6, (k + 1) % 6, 5]
        sentences[dialog] = ["a", "b", "c"]
        for layer in range(4):
            layers[layer][dialog] = [np.arange(6, dtype=np.float32) + 10 * k + layer + i for i in range(n)]
    return (speakers, labels, *layers, sentences, dialogs["train"], set(dialogs["test"]), dialogs["valid"])


@pytest.mark.parametrize("text_from, shift", [("roberta1", 0.0), ("roberta3", 2.0), ("mean", 1.5)])
def test_cosmic_import_uses_the_chosen_text_vector_and_the_file_splits(tmp_path, text_from, shift):
    report = import_pickle(_dump(cosmic_tuple(), tmp_path / "iemocap_features_roberta.pkl"), "cosmic", tmp_path / "s", text_from=text_from)
    assert report.dims == {"text": 6} and report.carved_valid == []
    assert report.dialogues == {"train": 2, "valid": 1, "test": 1}
    assert report.label_counts == {"hap": 1, "sad": 2, "neu": 2, "ang": 2, "exc": 1, "fru": 4}
    loaded = FeatureStore.open(tmp_path / "s").load()
    assert loaded.metadata.source == "cosmic-pickle" and loaded.metadata.preprocessing["text_from"] == text_from
    assert loaded.frame["utt_id"].tolist()[:3] == ["Ses01F_impro01_000", "Ses01F_impro01_001", "Ses01F_impro01_002"]
    assert loaded.frame["speaker"].tolist()[:3] == ["Ses01.M", "Ses01.F", "Ses01.M"]
    third = loaded.frame.index[loaded.frame["dialog_id"] == "Ses03F_script01_1"]
    assert loaded.frame.loc[third, "split"].tolist() == ["valid"] * 3
    # dialogue k=2, utterance i: arange(6) + 20 + layer + i.
    np.testing.assert_allclose(loaded.vectors["text"][third], np.arange(6) + 20 + shift + np.arange(3)[:, None])


class _Py2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote: byte strings as STRING opcodes, `numpy.core` globals."""

    dispatch = dict(pickle._Pickler.dispatch)
    _names = {np.ndarray: ("numpy", "ndarray"), np.dtype: ("numpy", "dtype"),
              multiarray._reconstruct: ("numpy.core.multiarray", "_reconstruct"),
              multiarray.scalar: ("numpy.core.multiarray", "scalar")}

    def _save_py2_string(self, obj):
        data = obj if isinstance(obj, bytes) else obj.encode("latin1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_string
    dispatch[str] = _save_py2_string

    def save_global(self, obj, name=None):
        module, name = self._names.get(obj) or ("__builtin__", obj.__name__)
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
        self.memoize(obj)


def test_python2_pickles_load_with_latin1(tmp_path):
    path = tmp_path / "py2.pkl"
    with path.open("wb") as handle:
        _Py2Pickler(handle, protocol=2).dump(mmgcn_tuple())
    assert b"numpy.core.multiarray\n_reconstruct" in path.read_bytes() and b"_codecs" not in path.read_bytes()
    obj = restricted_load(path)
    np.testing.assert_array_equal(obj[4]["Ses01F_impro02"][1], _values(1, 3, 5, 1)[1])
    report = import_pickle(path, "mmgcn", tmp_path / "store")
    assert report.rows_written == 36 and report.carved_valid == ["Ses04M_impro06"]


class Gadget:
    def __init__(self, value):
        self.value = value


class _RunsCommand:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize(
    "payload, refused",
    [
        (lambda marker: _RunsCommand(marker), "posix.system"),
        (lambda marker: {"x": [Gadget(1)]}, "Gadget"),
        (lambda marker: mmgcn_tuple()[:8] + (eval,), "builtins.eval"),
    ],
)
def test_anything_beyond_containers_and_arrays_is_refused_and_nothing_runs(tmp_path, payload, refused):
    marker = tmp_path / "executed"
    path = _dump(payload(marker), tmp_path / "evil.pkl", protocol=2)
    with pytest.raises(InputError) as info:
        import_pickle(path, "mmgcn", tmp_path / "store")
    message = str(info.value)
    assert message.startswith(f"{path}: refused to load global '")
    assert refused in message and "needs more than builtin containers, numbers, strings and numpy arrays" in message
    assert not marker.exists()
    assert not (tmp_path / "store").exists()


def test_getattr_gadget_is_refused(tmp_path):
    # GLOBAL builtins.getattr would let a file reach any attribute: refused like any other global.
    path = tmp_path / "gadget.pkl"
    path.write_bytes(b"cbuiltins\ngetattr\n(cos\nsystem\nS'x'\ntR.")
    with pytest.raises(InputError, match="refused to load global 'builtins.getattr'"):
        restricted_load(path)


def _mutate(obj: tuple, index: int, dialog: str, value) -> tuple:
    items = list(obj)
    items[index] = dict(items[index])
    items[index][dialog] = value
    return tuple(items)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: mmgcn_tuple()[:8], r"mmgcn pickle has 8 items, expected 9 items \(videoIDs, videoSpeakers"),
        (lambda: _mutate(mmgcn_tuple(), 4, "Ses01F_impro02", list(_values(1, 2, 5, 1))),
         r"dialogue Ses01F_impro02: videoAudio has 2 rows but the dialogue has 3 labels"),
        (lambda: _mutate(mmgcn_tuple(), 1, "Ses02F_impro03", ["F"]), r"dialogue Ses02F_impro03: 1 speakers for 2 labels"),
        (lambda: _mutate(mmgcn_tuple(), 1, "Ses02F_impro03", ["F", [1, 1, 0]]),
         r"dialogue Ses02F_impro03: utterance 1 has speaker \[1, 1, 0\]; expected a letter like 'M'/'F' or a one-hot vector"),
        (lambda: _mutate(mmgcn_tuple(), 2, "Ses01F_impro01", [0, 6]), r"dialogue Ses01F_impro01: utterance 1 has label 6, outside \[0, 6\)"),
        (lambda: _mutate(mmgcn_tuple(), 0, "Ses01F_impro01", ["a", "b", "c"]), r"dialogue Ses01F_impro01: videoIDs lists 3 utterances for 2 labels"),
        (lambda: _mutate(mmgcn_tuple(), 3, "Ses01F_impro01", list(np.zeros((2, 7), np.float32))),
         r"dialogue Ses01F_impro01: text vectors have 7 dims, the other dialogues 4"),
        (lambda: _mutate(mmgcn_tuple(), 5, "Ses01F_impro01", [np.zeros(3), np.full(3, np.nan)]), r"dialogue Ses01F_impro01: videoVisual contains NaN"),
        (lambda: mmgcn_tuple()[:7] + (TRAIN, TEST + ["Ses01F_impro01"]), r"dialogue Ses01F_impro01 is in both train and test"),
        (lambda: mmgcn_tuple()[:7] + (TRAIN + ["Ses09X"], TEST), r"videoLabels has no entry for dialogue Ses09X"),
        (lambda: [1, 2], r"mmgcn pickle has 2 items"),
        (lambda: {"a": 1}, r"a mmgcn pickle holds a tuple, this one holds a dict"),
    ],
)
def test_malformed_mmgcn_files_name_the_file_and_dialogue(tmp_path, make, message):
    path = _dump(make(), tmp_path / "bad.pkl")
    with pytest.raises(InputError, match=message) as info:
        import_pickle(path, "mmgcn", tmp_path / "store", dataset="iemocap")
    assert str(info.value).startswith(str(path))


def test_cosmic_tuple_length_and_truncated_files(tmp_path):
    with pytest.raises(InputError, match=r"cosmic pickle has 9 items, expected 10 items \(speakers, labels, roberta1"):
        import_pickle(_dump(cosmic_tuple()[:9], tmp_path / "c.pkl"), "cosmic", tmp_path / "s")
    truncated = tmp_path / "t.pkl"
    truncated.write_bytes(pickle.dumps(cosmic_tuple())[:200])
    with pytest.raises(InputError, match=r"t.pkl: not a readable pickle \(") :
        import_pickle(truncated, "cosmic", tmp_path / "s")
    with pytest.raises(InputError, match="pickle file not found"):
        restricted_load(tmp_path / "absent.pkl")
    with pytest.raises(InputError, match=r"cannot tell the dataset from dialogue ids such as \['dlg-a'\]"):
        obj = list(cosmic_tuple())
        obj[1] = {"dlg-a": [0]}
        import_pickle(_dump(tuple(obj), tmp_path / "u.pkl"), "cosmic", tmp_path / "s")


def test_cosmic_meld_eleven_tuple_keeps_emotion_labels(tmp_path):
    eye = np.eye(9).tolist()
    speakers = {d: [eye[d], eye[d + 1]] for d in range(3)}
    emotion = {d: [d, 6] for d in range(3)}
    sentiment = {d: [2, 2] for d in range(3)}
    layers = [{d: np.full((2, 5), 10 * layer + d, np.float32) for d in range(3)} for layer in range(4)]
    obj = (speakers, emotion, sentiment, *layers, {d: ["a", "b"] for d in range(3)}, [0], [2], [1])
    report = import_pickle(_dump(obj, tmp_path / "meld_features_roberta.pkl"), "cosmic", tmp_path / "s", text_from="mean")
    assert report.dataset == "meld" and report.dialogues == {"train": 1, "valid": 1, "test": 1}
    loaded = FeatureStore.open(tmp_path / "s").load()
    assert loaded.frame["label"].tolist() == [0, 6, 1, 6, 2, 6]
    assert loaded.frame["speaker"].tolist() == ["0", "1", "1", "2", "2", "3"]
    np.testing.assert_allclose(loaded.vectors["text"][:, 0], [15, 15, 16, 16, 17, 17])


def _mmgcn_meld(dialogues: dict, train: list, test: list, dims=(6, 4, 2)) -> tuple:
    """MMGCN's MELD 10-tuple over ``{dialogue number: (speaker indices, labels)}`` (one-hot speakers,
    a sentiment table last)."""
    eye = np.eye(9, dtype=np.float32)
    ids, speakers, labels, text, audio, visual, sentences, sentiment = ({} for _ in range(8))
    for dialog, (who, what) in dialogues.items():
        n = len(what)
        ids[dialog] = list(range(n))
        speakers[dialog] = [list(eye[s]) for s in who]
        labels[dialog] = list(what)
        text[dialog], audio[dialog], visual[dialog] = (np.full((n, d), dialog + i / 10, np.float32) for i, d in enumerate(dims))
        sentences[dialog], sentiment[dialog] = ["hi"] * n, [0] * n
    return ids, speakers, labels, text, audio, visual, sentences, list(train), list(test), sentiment


def test_a_file_without_valid_uses_the_standard_meld_dev_and_iemocap_valid_dialogues(tmp_path):
    # MMGCN's MELD file lists the dev dialogues (1039-1152) among its training ones.
    dialogues = {d: ([0, 1, 0], [0, 4, 6]) for d in (0, 1, 2, 1039, 1040, 1153)}
    obj = _mmgcn_meld(dialogues, [0, 1, 2, 1039, 1040], [1153])
    report = import_pickle(_dump(obj, tmp_path / "MELD_features_raw.pkl", protocol=2), "mmgcn", tmp_path / "m")
    assert (report.valid_rule, report.carved_valid) == ("standard", ["1039", "1040"])
    assert report.dialogues == {"train": 3, "valid": 2, "test": 1}
    rows = dict(report.table_rows())
    assert rows["valid split"].startswith("the standard meld validation dialogues (2, from dgnode/data/meld_structure.json)")
    meta = FeatureStore.open(tmp_path / "m").metadata
    assert meta.preprocessing["valid_standard"]["dialogues"] == ["1039", "1040"] and "valid_carve" not in meta.preprocessing
    assert meta.extra["dataset"] == "meld"
    # IEMOCAP: the structure file's 12 validation dialogues where the file's train list has them.
    valid = json.loads((Path(__file__).resolve().parents[2] / "dgnode" / "data" / "iemocap_structure.json")
                       .read_text())["splits"]["valid"]
    tables = list(mmgcn_tuple())
    for index in range(7):
        tables[index] = {**tables[index], **{d: tables[index]["Ses01F_impro01"] for d in valid[:3]}}
    tables[7] = [*TRAIN, *valid[:3]]
    report = import_pickle(_dump(tuple(tables), tmp_path / "IEMOCAP_features.pkl"), "mmgcn", tmp_path / "i")
    assert (report.valid_rule, report.carved_valid) == ("standard", sorted(valid[:3]))
    assert report.dialogues == {"train": len(TRAIN), "valid": 3, "test": 2}


@pytest.mark.slow
def test_raw_meld_and_its_pickle_give_stores_with_the_same_contract(meld_release, meld_store, tmp_path):
    """A store extracted from a raw MELD release and one imported from an MMGCN pickle of the same
    dialogues name dialogues, splits, orders, labels and speakers alike."""
    from dgnode.features.dataset import load_conversations
    from dgnode.features.validation import row_schema

    raw = FeatureStore.open(meld_store[0])
    manifest = meld_release.scan.manifest
    dialogues = {}
    for dialog_id, group in manifest.groupby("dialog_id", sort=False):
        first_seen = {name: rank for rank, name in enumerate(dict.fromkeys(group["speaker"]))}
        dialogues[int(dialog_id)] = ([first_seen[s] for s in group["speaker"]], [int(x) for x in group["label"]])
    split_of = dict(zip(manifest["dialog_id"].astype(int), manifest["split"]))
    train = [d for d in dialogues if split_of[d] in ("train", "valid")]  # as MMGCN's file: dev inside train
    test = [d for d in dialogues if split_of[d] == "test"]
    report = import_pickle(_dump(_mmgcn_meld(dialogues, train, test), tmp_path / "meld.pkl", protocol=2), "mmgcn",
                           tmp_path / "pickled")
    assert report.valid_rule == "standard"
    pickled = FeatureStore.open(tmp_path / "pickled")
    key_fields = ("dialog_id", "utt_id", "order", "speaker", "label", "split")
    assert [row_schema(raw.metadata).field(k) for k in key_fields] == [row_schema(pickled.metadata).field(k) for k in key_fields]
    assert raw.metadata.label_names == pickled.metadata.label_names
    assert raw.metadata.extra["dataset"] == pickled.metadata.extra["dataset"] == "meld"
    a, b = raw.load().frame, pickled.load().frame
    assert set(a["dialog_id"]) == set(b["dialog_id"])
    assert dict(zip(a["dialog_id"], a["split"])) == dict(zip(b["dialog_id"], b["split"]))
    # Row for row (the raw store lacks the two utterances without a clip; orders keep their place).
    b_rows = b.set_index(["dialog_id", "order"])
    for row in a.itertuples(index=False):
        assert b_rows.loc[(row.dialog_id, row.order), "label"] == row.label
    raw_data, pickled_data = load_conversations(raw), load_conversations(pickled)
    assert raw_data.label_names == pickled_data.label_names
    complete = {c.dialog_id for c in raw_data.conversations if len(c.utt_ids) == len(dialogues[int(c.dialog_id)][1])}
    for c, d in zip(sorted(raw_data.conversations, key=lambda c: c.dialog_id),
                    sorted(pickled_data.conversations, key=lambda c: c.dialog_id)):
        assert c.dialog_id == d.dialog_id and c.split == d.split
        if c.dialog_id in complete:
            assert c.speakers.tolist() == d.speakers.tolist() and c.labels.tolist() == d.labels.tolist()
