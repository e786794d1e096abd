"""The one-process trial function outside Tune: divergence fails the trial before it reports."""

from __future__ import annotations

import pytest

from dgnode.options import replace_dotted
from dgnode.features.dataset import load_conversations
from dgnode.training.loop import TrainingDiverged
from dgnode.training.rundir import RunDir
from dgnode.tuning.space import SearchSpace
from dgnode.tuning.trainable import single_process_trial


def test_nan_loss_fails_the_trial_without_reporting(monkeypatch, tiny_config, tiny_store):
    import ray.tune

    reported = []
    monkeypatch.setattr(ray.tune, "get_checkpoint", lambda: None)
    monkeypatch.setattr(ray.tune, "report", lambda metrics, checkpoint=None: reported.append(metrics))
    config = replace_dotted(tiny_config, {"optim.lr": 1e30, "train.nfe_cap": None})  # one step blows the weights up
    with pytest.raises(TrainingDiverged, match=r"train loss is nan at epoch 0: training diverged"):
        single_process_trial({}, data=load_conversations(tiny_store), base_config=config,
                             space=SearchSpace(searched={}, fixed={}), epochs=2)
    assert reported == []


def test_trial_reports_every_epoch_with_a_resumable_checkpoint(monkeypatch, tiny_config, tiny_store, tmp_path):
    import shutil

    import ray.tune
    import torch

    reports = []

    def report(metrics, checkpoint=None):
        kept = tmp_path / f"checkpoint_{len(reports)}"
        shutil.copytree(checkpoint.path, kept)
        reports.append((metrics, kept))

    monkeypatch.setattr(ray.tune, "get_checkpoint", lambda: None)
    monkeypatch.setattr(ray.tune, "report", report)
    data = load_conversations(tiny_store)
    space = SearchSpace(searched={}, fixed={})
    single_process_trial({}, data=data, base_config=tiny_config, space=space, epochs=3)
    assert [m["epoch"] for m, _ in reports] == [0, 1, 2]
    assert [m["early_stopped"] for m, _ in reports] == [0, 0, 0]
    best = max(m["valid_wf1"] for m, _ in reports)
    assert reports[-1][0]["best_valid_wf1"] == best
    state = torch.load(reports[-1][1] / "best.pt", weights_only=True)
    assert state["best_epoch"] == reports[-1][0]["best_epoch"]
    assert len(RunDir(reports[-1][1]).read_history()) == 3

    # Resuming from the epoch-1 checkpoint trains epoch 2 only and reproduces it exactly.
    resumed = []
    monkeypatch.setattr(ray.tune, "get_checkpoint", lambda: ray.tune.Checkpoint.from_directory(str(reports[1][1])))
    monkeypatch.setattr(ray.tune, "report", lambda metrics, checkpoint=None: resumed.append(metrics))
    single_process_trial({}, data=data, base_config=tiny_config, space=space, epochs=3)
    assert [m["epoch"] for m in resumed] == [2]
    for key in ("train_loss", "valid_wf1", "best_valid_wf1", "nfe"):
        assert resumed[0][key] == reports[2][0][key], key
