"""The Parquet feature store contract: idempotent, crash-safe appends and exact reads, on the local
disk and in S3."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dgnode.errors import InputError
from dgnode.features.store import FeatureStore, StoreMetadata

pytestmark = pytest.mark.parametrize("store_kind", ["local", "s3"])


def _rows(ids, dialog="Ses01F_impro01", split="train", dims=(4, 3)):
    n = len(ids)
    rng = np.random.default_rng(len(ids))
    return pd.DataFrame(
        {
            "dialog_id": [dialog] * n,
            "utt_id": ids,
            "order": list(range(n)),
            "speaker": ["Ses01.F", "Ses01.M"] * (n // 2) + ["Ses01.F"] * (n % 2),
            "label": [i % 2 if i != 1 else None for i in range(n)],
            "split": [split] * n,
            "text": list(rng.normal(size=(n, dims[0])).astype(np.float32)),
            "audio": list(rng.normal(size=(n, dims[1])).astype(np.float32)),
        }
    )


@pytest.fixture
def store(store_base):
    return FeatureStore.create(store_base / "store", StoreMetadata(model="tiny", dims={"text": 4, "audio": 3}, label_names=["a", "b"]))


def test_append_is_idempotent_and_load_is_exact(store):
    rows = _rows(["u0", "u1", "u2"])
    assert store.append(rows) == 3
    assert store.append(rows) == 0
    assert store.append(_rows(["u0", "u1", "u2", "u3"])) == 1
    assert len(store) == 4 and len(store.part_paths()) == 2
    rerun = FeatureStore.open(store.root)  # a re-run knows nothing but what is stored
    assert rerun.append(_rows(["u0", "u1", "u2", "u3", "u4"])) == 1 and rerun.append(_rows(["u0"])) == 0
    assert len(store) == 5 and len(rerun.part_paths()) == 3
    loaded = FeatureStore.open(store.root).load()
    assert loaded.frame["utt_id"].tolist() == ["u0", "u1", "u2", "u3", "u4"] and loaded.duplicates == 0
    assert loaded.frame["label"].isna().tolist() == [False, True, False, False, False]
    np.testing.assert_array_equal(loaded.vectors["text"][:3], np.stack(rows["text"]))
    assert loaded.vectors["audio"].dtype == np.float32 and loaded.vectors["audio"].shape == (5, 3)


def test_half_written_parts_never_count(store):
    store.append(_rows(["u0"]))
    (store.root / ".part-x.parquet.abc.tmp").write_bytes(b"PAR1 truncated")  # a local temporary
    assert FeatureStore.open(store.root).stored_utt_ids() == {"u0"}


def test_incompatible_store_and_bad_rows_are_clear_errors(store):
    with pytest.raises(InputError, match="made differently"):
        FeatureStore.create(store.root, StoreMetadata(model="huge", dims={"text": 4, "audio": 3}, label_names=["a", "b"]))
    bad = _rows(["u0"])
    bad["text"] = [np.zeros(5, np.float32)]
    with pytest.raises(InputError, match="text vectors have length 5, expected 4"):
        store.append(bad)
    with pytest.raises(InputError, match="unknown split"):
        store.append(_rows(["u9"], split="dev"))
    with pytest.raises(InputError, match="not a feature store"):
        FeatureStore.open(store.root / "nope")


def test_fingerprint_changes_with_content_and_failures_roundtrip(store):
    empty = store.fingerprint()
    store.append(_rows(["u0"]))
    assert store.fingerprint() != empty
    failures = pd.DataFrame([{"utt_id": "u5", "dialog_id": "d", "modality": "vision", "path": "x.avi", "error": "truncated"}])
    assert store.append_failures(failures) == 1
    assert store.load_failures()["utt_id"].tolist() == ["u5"]
    store.clear_failures({"u5"})
    assert store.load_failures().empty


def test_rows_made_with_other_settings_or_input_are_refused(store_base):
    def metadata(**changes):
        values = dict(model="tiny", dims={"text": 4}, label_names=["a", "b"], source="imagebind",
                      preprocessing={"crop": "speaker"}, extra={"pickle_sha256": "abc", "manifest": "m1"})
        values.update(changes)
        return StoreMetadata(**values)

    root = store_base / "store"
    FeatureStore.create(root, metadata())
    FeatureStore.create(root, metadata(extra={"pickle_sha256": "abc", "manifest": "m2"}))  # not an identity key
    with pytest.raises(InputError, match=r"settings differ: crop \(store 'speaker', now 'full'\)"):
        FeatureStore.create(root, metadata(preprocessing={"crop": "full"}))
    with pytest.raises(InputError, match="pickle_sha256: store has 'abc'"):
        FeatureStore.create(root, metadata(extra={"pickle_sha256": "def"}))
    with pytest.raises(InputError, match="source: store has 'imagebind'"):
        FeatureStore.create(root, metadata(source="synthetic"))
