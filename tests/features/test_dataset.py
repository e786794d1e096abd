"""The conversation dataset API: ordering, speakers, labels, normalisation fitted on train only, batches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from dgnode.errors import InputError
from dgnode.features.dataset import fit_standard, collate, iterate_batches, load_conversations

# Stored out of conversation order on purpose: dialogue "d1" rows arrive as orders 2, 0, 1.
DIALOGUES = [
    {"dialog_id": "d1", "split": "train", "speakers": ["M", "F", "M"], "labels": [2, None, 0], "orders": [2, 0, 1]},
    {"dialog_id": "d0", "split": "train", "speakers": ["B", "A", "C", "A"], "labels": [0, 1, 2, 1]},
    {"dialog_id": "d2", "split": "valid", "speakers": ["X", "X"], "labels": [1, 1]},
    {"dialog_id": "d3", "split": "test", "speakers": ["Q", "P"], "labels": [None, 2]},
]


def _raw(row: int, modality_index: int, dim: int) -> np.ndarray:
    return np.arange(dim, dtype=np.float32) + 1000 * row + 100 * modality_index


def test_conversations_are_ordered_with_mapped_speakers_and_labels(make_store):
    data = load_conversations(make_store(DIALOGUES), normalise="none")
    assert [c.dialog_id for c in data.conversations] == ["d0", "d1", "d2", "d3"]
    assert [c.split for c in data.conversations] == ["train", "train", "valid", "test"]
    d0, d1, d2, d3 = data.conversations
    # d1 rows were written as orders 2, 0, 1 (global rows 0, 1, 2): conversation order is rows 1, 2, 0.
    assert d1.utt_ids == ["d1_u000_1", "d1_u001_2", "d1_u002_0"]
    torch.testing.assert_close(d1.features["text"], torch.from_numpy(np.stack([_raw(r, 0, 4) for r in (1, 2, 0)])))
    torch.testing.assert_close(d1.features["audio"], torch.from_numpy(np.stack([_raw(r, 1, 3) for r in (1, 2, 0)])))
    assert d1.speakers.tolist() == [0, 1, 1]  # F, M, M by first appearance
    assert d1.labels.tolist() == [-1, 0, 2]
    assert d0.speakers.tolist() == [0, 1, 2, 1]  # B, A, C, A by first appearance
    assert d0.labels.tolist() == [0, 1, 2, 1]
    assert d2.speakers.tolist() == [0, 0] and d3.speakers.tolist() == [0, 1]  # Q, P by first appearance
    assert d3.labels.tolist() == [-1, 2]
    for c in data.conversations:
        assert c.speakers.dtype == torch.long and c.labels.dtype == torch.long
        assert c.features["text"].dtype == torch.float32 and c.features["text"].shape == (len(c), 4)
    assert data.num_speakers == 3
    assert data.dims == {"text": 4, "audio": 3} and data.modalities == ["text", "audio"]
    assert data.label_names == ["a", "b", "c"] and data.num_classes == 3
    assert [c.dialog_id for c in data.split("train")] == ["d0", "d1"]
    assert [c.dialog_id for c in data.split("test")] == ["d3"]
    assert data.normalisation == {"method": "none"}
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        data.split("dev")


def test_standard_normalisation_is_fitted_on_train_rows_only(make_store):
    dims = {"text": 4, "audio": 3, "vision": 2}
    data = load_conversations(make_store(DIALOGUES, dims=dims))
    raw = load_conversations(make_store(DIALOGUES, dims=dims), normalise="none")
    assert data.normalisation["method"] == "standard"
    assert data.normalisation["fit_split"] == "train" and data.normalisation["fit_rows"] == 7
    for m in dims:
        train = np.concatenate([c.features[m].numpy() for c in raw.split("train")]).astype(np.float64)
        mean, std = train.mean(0), train.std(0)
        np.testing.assert_allclose(data.normalisation["stats"][m]["mean"].numpy(), mean, rtol=1e-6)
        np.testing.assert_allclose(data.normalisation["stats"][m]["std"].numpy(), std, rtol=1e-6)
        for normed, original in zip(data.conversations, raw.conversations):
            np.testing.assert_allclose(normed.features[m].numpy(), (original.features[m].numpy() - mean) / std, rtol=1e-5, atol=1e-5)
        fitted = np.concatenate([c.features[m].numpy() for c in data.split("train")])
        np.testing.assert_allclose(fitted.mean(0), 0.0, atol=1e-5)
        np.testing.assert_allclose(fitted.std(0), 1.0, atol=1e-5)
    # Valid/test rows are larger than any train row (later rows): far above 0 after train statistics.
    assert float(data.split("test")[0].features["text"].min()) > 2.0


def test_test_features_do_not_leak_into_the_statistics(make_store):
    shifted = [dict(d) for d in DIALOGUES]
    shifted.append({"dialog_id": "d9", "split": "test", "speakers": ["A"] * 5, "labels": [0] * 5})
    base = load_conversations(make_store(DIALOGUES))
    more_test = load_conversations(make_store(shifted))
    for m in ("text", "audio"):
        torch.testing.assert_close(base.normalisation["stats"][m]["mean"], more_test.normalisation["stats"][m]["mean"])
        for a, b in zip(base.split("train"), more_test.split("train")):
            torch.testing.assert_close(a.features[m], b.features[m])


def test_l2_rows_have_unit_norm_and_constant_train_dimensions_are_only_centred(make_store):
    data = load_conversations(make_store(DIALOGUES, dims={"text": 2}), normalise="l2")
    for c in data.conversations:
        torch.testing.assert_close(c.features["text"].norm(dim=1), torch.ones(len(c)))
    assert data.normalisation == {"method": "l2"}
    mean, std = fit_standard(np.array([[1.0, 5.0], [3.0, 5.0]], dtype=np.float32))
    assert mean.tolist() == [2.0, 5.0] and std.tolist() == [1.0, 1.0]


def test_any_subset_of_modalities_in_canonical_order(make_store):
    store = make_store(DIALOGUES, dims={"text": 4, "audio": 3, "vision": 2})
    data = load_conversations(store, modalities=["vision", "text"], normalise="none")
    assert data.modalities == ["text", "vision"] and data.dims == {"text": 4, "vision": 2}
    assert list(data.conversations[0].features) == ["text", "vision"]
    torch.testing.assert_close(data.conversations[0].features["vision"][0], torch.from_numpy(_raw(3, 2, 2)))
    only_audio = load_conversations(store.root, modalities=["audio"], normalise="none")
    assert only_audio.dims == {"audio": 3}
    with pytest.raises(InputError, match=r"unknown modalities \['speech'\]"):
        load_conversations(store, modalities=["speech"])


@pytest.mark.parametrize(
    "dialogues, message",
    [
        ([DIALOGUES[2], DIALOGUES[3]], r"no train split \(splits present: \['test', 'valid'\]\)"),
        ([{"dialog_id": "r", "split": "train", "speakers": ["A"] * 3, "labels": [0] * 3, "orders": [0, 1, 1]}], r"dialogue r repeats order value\(s\) \[1\]"),
        ([{"dialog_id": "l", "split": "train", "speakers": ["A"] * 2, "labels": [0, 3]}], r"utterance l_u001_1 has label 3, outside \[0, 3\)"),
    ],
)
def test_malformed_stores_are_clear_errors_naming_the_store(make_store, dialogues, message):
    store = make_store(dialogues)
    with pytest.raises(InputError, match=message) as info:
        load_conversations(store)
    assert str(info.value).startswith(str(store.root))


def test_gaps_in_order_are_counted_and_positions_are_ranks(make_store):
    # An utterance whose media failed extraction is absent: the conversation goes on without it.
    store = make_store([{"dialog_id": "g", "split": "train", "speakers": ["A", "B", "A"], "labels": [0, 1, 2], "orders": [1, 2, 4]}])
    data = load_conversations(store, normalise="none")
    assert data.missing_utterances == 2
    (conversation,) = data.conversations
    assert conversation.labels.tolist() == [0, 1, 2]
    assert collate([conversation]).position.tolist() == [0, 1, 2]


def test_dialogue_in_two_splits_is_an_error(make_store):
    store = make_store([DIALOGUES[0]])
    extra = pd.DataFrame(
        {"dialog_id": ["d1"], "utt_id": ["d1_extra"], "order": [3], "speaker": ["M"], "label": [0], "split": ["test"],
         "text": [np.zeros(4, np.float32)], "audio": [np.zeros(3, np.float32)]}
    )
    store.append(extra)
    with pytest.raises(InputError, match=r"dialogue d1 is in several splits \['test', 'train'\]"):
        load_conversations(store)


def test_collate_concatenates_in_order_with_exact_indices(make_store):
    data = load_conversations(make_store(DIALOGUES), normalise="none")
    d0, d1, d2, d3 = data.conversations
    batch = collate([d2, d0, d1])
    assert batch.dialog_ids == ["d2", "d0", "d1"]
    assert batch.lengths.tolist() == [2, 4, 3]
    assert batch.dialog_index.tolist() == [0, 0, 1, 1, 1, 1, 2, 2, 2]
    assert batch.position.tolist() == [0, 1, 0, 1, 2, 3, 0, 1, 2]
    assert batch.speakers.tolist() == [0, 0, 0, 1, 2, 1, 0, 1, 1]  # speakers by first appearance per dialogue
    assert batch.labels.tolist() == [1, 1, 0, 1, 2, 1, -1, 0, 2]
    assert batch.utt_ids == d2.utt_ids + d0.utt_ids + d1.utt_ids
    torch.testing.assert_close(batch.features["audio"], torch.cat([d2.features["audio"], d0.features["audio"], d1.features["audio"]]))
    assert batch.num_conversations == 3
    moved = batch.to("cpu")
    assert moved.position.tolist() == batch.position.tolist() and moved.features["text"].device.type == "cpu"
    with pytest.raises(ValueError, match="at least one conversation"):
        collate([])


def test_iterate_batches_covers_everything_and_is_seeded(make_store):
    conversations = load_conversations(make_store(DIALOGUES), normalise="none").conversations
    plain = list(iterate_batches(conversations, batch_size=3, shuffle=False))
    assert [b.dialog_ids for b in plain] == [["d0", "d1", "d2"], ["d3"]]

    def epoch(seed):
        return [b.dialog_ids for b in iterate_batches(conversations, 2, shuffle=True, generator=torch.Generator().manual_seed(seed))]

    assert epoch(7) == epoch(7)
    expected = torch.randperm(4, generator=torch.Generator().manual_seed(7)).tolist()
    assert sum(epoch(7), []) == [f"d{i}" for i in expected]
    assert sorted(sum(epoch(3), [])) == ["d0", "d1", "d2", "d3"]
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        next(iterate_batches(conversations, 0, shuffle=False))
