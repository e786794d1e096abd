"""Learning on synthetic features over the real IEMOCAP structure (151 dialogues, 7433 utterances).

The synthetic store plants class signal that is partly missing per modality and a per-speaker
mood that only context reveals (dgnode.features.synth), so a context-free MLP plateaus near 0.59
test weighted F1 while DGODE, which sees the dialogue, goes well past it.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from dgnode.training.config import load_train_config
from dgnode.training.loop import fit


def majority_class_wf1(data) -> float:
    """Weighted F1 on test of always predicting the most frequent train class: the chance bar."""
    train = np.concatenate([c.labels.numpy() for c in data.split("train")])
    test = np.concatenate([c.labels.numpy() for c in data.split("test")])
    train, test = train[train >= 0], test[test >= 0]
    majority = np.bincount(train).argmax()
    return float(f1_score(test, np.full_like(test, majority), average="weighted", zero_division=0))


@pytest.mark.slow
def test_dgode_beats_context_free_mlp_and_chance(iemocap_data, fast_config_path, tmp_path):
    chance = majority_class_wf1(iemocap_data)
    assert chance < 0.1
    dgode = fit(load_train_config(fast_config_path, {"report.plots": False}), iemocap_data, tmp_path / "dgode", progress=False)
    mlp_config = load_train_config(
        None,
        {"model.name": "mlp", "model.hidden": 64, "model.dropout": 0.2, "optim.lr": 3e-3, "train.epochs": 8,
         "train.patience": 3, "report.plots": False},
    )
    mlp = fit(mlp_config, iemocap_data, tmp_path / "mlp", progress=False)
    assert dgode.test.weighted_f1 > 0.6 > 6 * chance
    assert dgode.test.weighted_f1 > mlp.test.weighted_f1 + 0.03
    assert dgode.report["mean_nfe"] == 8.0


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides,nfe,width",
    [
        ({"model.use_ode": False}, 0.0, 3 * 64),
        ({"model.use_mixhop": False}, 8.0, 3 * 64),
        ({"model.use_speaker": False}, 8.0, 3 * 64),
        ({"data.modalities": ["text"]}, 8.0, 64),
    ],
    ids=["no-ode", "no-mixhop", "no-speaker", "text-only"],
)
def test_ablations_train(iemocap_data, fast_config_path, tmp_path, overrides, nfe, width):
    config = load_train_config(fast_config_path, {"train.epochs": 3, "report.plots": False, **overrides})
    result = fit(config, iemocap_data, tmp_path, progress=False)
    assert result.report["mean_nfe"] == nfe
    assert result.test.representations.shape == (1623, width)
    assert result.test.weighted_f1 > 0.25  # learnt something in 3 epochs: > 2.5x the majority-class bar
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
