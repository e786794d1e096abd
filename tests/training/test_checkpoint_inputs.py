"""Checkpoints carry their inputs; a saved run predicts the same on a changed copy of its store."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from dgnode.errors import InputError
from dgnode.features.dataset import SPEAKER_ORDER, load_conversations
from dgnode.features.store import FeatureStore
from dgnode.training.best import load_run
from dgnode.training.config import load_train_config
from dgnode.training.loop import fit
from dgnode.training.provenance import StoreChangedWarning
from dgnode.training.rundir import RunDir


@pytest.fixture(scope="module")
def saved_run(small_store, fast_config_path, tmp_path_factory):
    config = load_train_config(fast_config_path, {"report.plots": False, "train.epochs": 2,
                                                  "data.store": str(small_store)})
    out = tmp_path_factory.mktemp("run")
    fit(config, load_conversations(small_store), out, progress=False)
    return out


def test_checkpoint_carries_everything_needed_to_reload(saved_run, small_store, small_data):
    state = RunDir(saved_run).load_model()
    assert state["modalities"] == ["text", "audio", "vision"] and state["dims"] == small_data.dims
    assert state["label_names"] == small_data.label_names and state["num_speakers"] == small_data.num_speakers
    assert state["speaker_order"] == SPEAKER_ORDER == "first_appearance"
    assert state["store"] == {"path": str(small_store), "fingerprint": FeatureStore.open(small_store).fingerprint()}
    assert state["normalisation"]["method"] == "standard"
    for m, stats in small_data.normalisation["stats"].items():
        assert torch.equal(state["normalisation"]["stats"][m]["mean"], stats["mean"])
        assert torch.equal(state["normalisation"]["stats"][m]["std"], stats["std"])
    assert state["config"]["model"]["name"] == "dgode" and state["config"]["data"]["store"] == str(small_store)
    assert {"torch", "torchdiffeq", "dgnode_commit"} <= set(state["versions"])


def changed_copy(store, target, drop_dialogues: set[str]):
    """A copy of ``store`` whose rows are split into two parts: the part holding
    ``drop_dialogues`` is removed, the other written with its rows in reverse order."""
    shutil.copytree(store, target)
    parts = FeatureStore.open(target).part_paths()
    table = pa.concat_tables([pq.read_table(p.local_path()) for p in parts])
    for part in parts:
        part.delete()
    keep = np.array([d not in drop_dialogues for d in table.column("dialog_id").to_pylist()])
    kept = table.filter(pa.array(keep)).take(pa.array(np.arange(int(keep.sum()))[::-1]))
    pq.write_table(kept, target / "part-00000000000000-kept.parquet")
    return target


def test_a_saved_run_predicts_the_same_on_a_store_with_a_part_removed_and_rows_reordered(saved_run, small_store,
                                                                                          small_data, tmp_path):
    trainer, _ = load_run(saved_run)
    before = trainer.evaluate("test")
    dropped = {c.dialog_id for c in small_data.split("train")[:8]}  # the removed part: 8 train dialogues
    copy = changed_copy(small_store, tmp_path / "copy", dropped)
    # Refitting on the copy's train split would change the statistics the model was trained with.
    refit = load_conversations(copy).normalisation["stats"]["audio"]["mean"]
    assert not torch.equal(refit, small_data.normalisation["stats"]["audio"]["mean"])
    with pytest.warns(StoreChangedWarning, match="fingerprint"):
        reloaded, _ = load_run(saved_run, store=str(copy))
    after = reloaded.evaluate("test")
    assert after.utt_ids == before.utt_ids
    assert np.array_equal(after.predictions, before.predictions)
    np.testing.assert_array_equal(after.representations, before.representations)
    assert reloaded.data.normalisation["stats"]["audio"]["mean"].equal(small_data.normalisation["stats"]["audio"]["mean"])


def test_a_store_with_other_dims_or_labels_is_a_clear_error(saved_run, small_store, tmp_path):
    state = RunDir(saved_run).load_model()
    from dgnode.training.provenance import reload_data

    config = RunDir(saved_run).read_config()
    with pytest.raises(InputError, match="trained on inputs"):
        reload_data(small_store, {**state, "dims": {**state["dims"], "text": 999}}, config)
    with pytest.raises(InputError, match="labels"):
        reload_data(small_store, {**state, "label_names": ["x", "y"]}, config)
    with pytest.raises(InputError, match="speakers"):
        reload_data(small_store, {**state, "num_speakers": 1}, config)
