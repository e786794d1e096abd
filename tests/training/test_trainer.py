"""Trainer: determinism, resuming, class weights, callbacks, the NFE cap, model wrapping."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from dgnode.errors import InputError
from dgnode.features.dataset import ConversationSet
from dgnode.models.graph_ode import NFECapExceeded
from dgnode.training.config import load_train_config
from dgnode.features.dataset import collate
from dgnode.training.loop import StopTraining, fit
from dgnode.training.trainer import Trainer

FAST = {"report.plots": False}


def config_for(fast_config_path, **overrides):
    """``config_for(path, train__seed=3)``: dotted keys with ``__`` for the dots."""
    return load_train_config(fast_config_path, {**FAST, **{k.replace("__", "."): v for k, v in overrides.items()}})


def test_same_seed_gives_identical_metrics_and_other_seed_differs(small_data, fast_config_path):
    results = []
    for seed in (0, 0, 1):
        trainer = Trainer(config_for(fast_config_path, train__seed=seed), small_data)
        stats = [trainer.train_epoch(epoch=e) for e in range(2)]
        valid = trainer.evaluate("valid")
        results.append(([s["train_loss"] for s in stats], valid.weighted_f1, valid.predictions, valid.representations))
    (loss_a, wf1_a, pred_a, rep_a), (loss_b, wf1_b, pred_b, rep_b), (loss_c, *_rest) = results
    assert loss_a == loss_b and wf1_a == wf1_b
    assert np.array_equal(pred_a, pred_b) and np.array_equal(rep_a, rep_b)
    assert loss_c != loss_a


def test_resuming_from_state_dict_equals_uninterrupted_training(small_data, fast_config_path):
    config = config_for(fast_config_path)
    straight = Trainer(config, small_data)
    for epoch in range(2):
        straight.train_epoch(epoch=epoch)

    first = Trainer(config, small_data)
    first.train_epoch(epoch=0)
    state = first.state_dict()
    resumed = Trainer(config, small_data)
    with torch.no_grad():  # whatever the new trainer holds is replaced by the checkpoint
        for parameter in resumed.core_model.parameters():
            parameter.add_(1.0)
    resumed.load_state_dict(state)
    assert resumed.epoch == 1
    resumed.train_epoch(epoch=1)
    for (name, a), (_, b) in zip(straight.core_model.state_dict().items(), resumed.core_model.state_dict().items()):
        assert torch.equal(a, b), name


def test_class_weights_are_inverse_train_frequency(fast_config_path):
    from dgnode.features.dataset import Conversation

    def conversation(split, labels):
        n = len(labels)
        return Conversation(f"{split}{n}{labels}", split, [f"u{i}" for i in range(n)], {"text": torch.zeros(n, 4)},
                            torch.zeros(n, dtype=torch.long), torch.tensor(labels))

    data = ConversationSet(
        conversations=[conversation("train", [0, 0, 0, 1, -1, 2, 0, 1]), conversation("valid", [1, 1]),
                       conversation("test", [2])],
        label_names=["a", "b", "c", "d"],
        num_speakers=1,
        dims={"text": 4},
        normalisation={"method": "none"},
    )
    trainer = Trainer(config_for(fast_config_path, train__class_weights=True), data)
    # 7 labelled train utterances, 4 classes, counts 4, 2, 1, 0: w_c = 7 / (4 n_c), 0 when absent.
    assert trainer.class_weights.tolist() == pytest.approx([7 / 16, 7 / 8, 7 / 4, 0.0])
    assert Trainer(config_for(fast_config_path), data).class_weights is None


def test_callback_can_stop_training_and_sees_metrics(small_data, fast_config_path, tmp_path):
    seen = []

    def callback(epoch, metrics):
        seen.append((epoch, dict(metrics)))
        if epoch == 1:
            raise StopTraining("asha")

    result = fit(config_for(fast_config_path, train__epochs=6, train__patience=0), small_data, tmp_path,
                 callbacks=[callback], progress=False)
    assert [e for e, _ in seen] == [0, 1]
    assert set(seen[0][1]) == {"epoch", "train_loss", "valid_wf1", "valid_acc", "valid_loss", "nfe", "epoch_time",
                               # DGODE's stability diagnostics (tests/models/test_ode_stability.py)
                               "diag_ode_weight_eig_min", "diag_ode_weight_eig_max", "diag_ode_orthogonality_error",
                               "diag_ode_adjacency_symmetric_max", "diag_ode_growth_bound"}
    assert seen[0][1]["nfe"] == 8.0  # rk4, 2 steps of 0.5: 8 evaluations per batch
    assert result.epochs_run == 2 and result.stopped == "callback: asha"
    assert (tmp_path / "best.pt").exists() and (tmp_path / "report.json").exists()


def test_nfe_cap_from_train_config_stops_a_stiff_run(small_data, fast_config_path):
    trainer = Trainer(config_for(fast_config_path, model__ode__step_size=0.01, train__nfe_cap=20), small_data)
    with pytest.raises(NFECapExceeded, match="more than 20 function evaluations"):
        trainer.train_epoch()


def test_wrap_model_is_used_for_training_only(small_data, fast_config_path):
    calls = []

    class Counting(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, batch):
            calls.append(len(batch.dialog_ids))
            return self.inner(batch)

    trainer = Trainer(config_for(fast_config_path), small_data, wrap_model=Counting)
    stats = trainer.train_epoch(conversations=small_data.split("train")[:5])
    assert calls == [5] and stats["batches"] == 1
    trainer.evaluate("valid")
    assert calls == [5]  # evaluation runs the unwrapped core model


def test_evaluate_ignores_unlabelled_utterances(small_data, fast_config_path):
    trainer = Trainer(config_for(fast_config_path), small_data)
    conversations = [dataclasses.replace(c, labels=c.labels.clone()) for c in small_data.split("test")]
    full = trainer.evaluate(conversations)
    conversations[0].labels[:] = -1
    partial = trainer.evaluate(conversations)
    hidden = len(conversations[0].utt_ids)
    assert sum(partial.support.values()) == sum(full.support.values()) - hidden
    assert np.array_equal(partial.predictions, full.predictions)  # predictions cover every utterance
    assert partial.summary()["labelled"] == partial.summary()["utterances"] - hidden


def test_modalities_subset_and_missing_modality(small_data, fast_config_path):
    trainer = Trainer(config_for(fast_config_path, data__modalities=["text", "vision"]), small_data)
    assert trainer.dims == {"text": 64, "vision": 32}
    text_only = dataclasses.replace(small_data, dims={"text": 64})
    with pytest.raises(InputError, match=r"data.modalities asks for \['audio'\]"):
        Trainer(config_for(fast_config_path, data__modalities=["text", "audio"]), text_only)


def test_fit_requires_a_valid_split(small_data, fast_config_path, tmp_path):
    no_valid = dataclasses.replace(small_data, conversations=[c for c in small_data.conversations if c.split != "valid"])
    with pytest.raises(InputError, match="no valid dialogues"):
        fit(config_for(fast_config_path), no_valid, tmp_path, progress=False)


def test_split_without_labels_is_a_clear_error(small_data, fast_config_path):
    trainer = Trainer(config_for(fast_config_path), small_data)
    unlabelled = [dataclasses.replace(c, labels=torch.full_like(c.labels, -1)) for c in small_data.split("test")]
    with pytest.raises(InputError, match="has no labelled utterances"):
        trainer.evaluate(unlabelled)


def test_rank_changes_dropout_masks_but_not_initial_weights(small_data, fast_config_path):
    config = config_for(fast_config_path)
    worker0, worker1 = (Trainer(config, small_data, rank=r, world_size=2) for r in (0, 1))
    for a, b in zip(worker0.core_model.parameters(), worker1.core_model.parameters()):
        assert torch.equal(a, b)
    batch = collate(small_data.split("train")[:4])
    outputs = []
    for worker in (worker0, worker1):
        worker.seed_dropout(epoch=0)
        worker.core_model.train()
        outputs.append(worker.core_model(batch).logits)
    assert not torch.equal(*outputs)
    with pytest.raises(ValueError, match="rank must be in"):
        Trainer(config, small_data, rank=1)
