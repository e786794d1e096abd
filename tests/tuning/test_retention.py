"""Which trial checkpoints a search keeps (dgnode.tuning.retention): a superseded checkpoint goes only
once its successor is older than the lag; the latest always stays; a finished search keeps one."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import pytest
from ray.tune import Checkpoint

from dgnode.tuning import retention as retention_module
from dgnode.tuning.retention import CheckpointRetention, prune_finished, retention_lag_s


def _checkpoint(trial_dir, index: int) -> Checkpoint:
    directory = trial_dir / f"checkpoint_{index:06d}"
    directory.mkdir(parents=True)
    (directory / "state.pt").write_bytes(b"x")
    return Checkpoint.from_directory(str(directory))


def test_a_superseded_checkpoint_goes_only_after_the_lag(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "10")
    assert retention_lag_s() == 30.0
    retention, trial = CheckpointRetention(), SimpleNamespace(trial_id="t1")
    clock = iter([100.0, 105.0, 110.0])
    monkeypatch.setattr(retention_module, "time", SimpleNamespace(time=lambda: next(clock)))
    for index in range(3):
        retention.on_checkpoint(0, [], trial, _checkpoint(tmp_path / "trial", index))
    assert sorted(p.name for p in (tmp_path / "trial").iterdir()) == [f"checkpoint_{i:06d}" for i in range(3)]
    assert retention.prune(now=134.0) == 0  # checkpoint 1 registered 29 s ago: a snapshot may still name 0
    restored = pickle.loads(pickle.dumps(retention))  # travels with Tune's experiment state
    assert restored.prune(now=136.0) == 1  # 0 goes; 1's successor (at 110) is not old enough yet
    assert sorted(p.name for p in (tmp_path / "trial").iterdir()) == ["checkpoint_000001", "checkpoint_000002"]
    assert restored.prune(now=10_000.0) == 1  # the latest always stays
    assert [p.name for p in (tmp_path / "trial").iterdir()] == ["checkpoint_000002"]


@pytest.mark.parametrize("period, lag", [("auto", 30.0), ("2", 6.0), ("0", 3.0)])
def test_the_lag_follows_the_snapshot_period(monkeypatch, period, lag):
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", period)
    assert retention_lag_s() == lag


def test_a_finished_search_keeps_each_trials_latest_checkpoint(tmp_path):
    trials = [tmp_path / "trial_a", tmp_path / "trial_b"]
    latest = [[_checkpoint(trials[0], i) for i in range(3)][-1], [_checkpoint(trials[1], 0)][-1]]
    (trials[0] / "result.json").write_text("{}")
    results = [SimpleNamespace(checkpoint=latest[0]), SimpleNamespace(checkpoint=latest[1]),
               SimpleNamespace(checkpoint=None)]  # a trial that failed before its first checkpoint
    assert prune_finished(results) == 2
    assert sorted(p.name for p in trials[0].iterdir()) == ["checkpoint_000002", "result.json"]
    assert [p.name for p in trials[1].iterdir()] == ["checkpoint_000000"]
