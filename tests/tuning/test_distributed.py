"""Ray Train data parallelism: the sharding maths, and 1 worker == one process, 2 workers == 1 worker,
resume from the last checkpoint."""

from __future__ import annotations

import math

import pytest
import torch

from dgnode.features.dataset import iterate_batches, load_conversations
from dgnode.cli import main
from dgnode.training.batches import epoch_batches, shard_of_batch
from dgnode.training.distributed import DistributedSettings, run_distributed
from dgnode.training.reproducibility import derive_seed
from dgnode.training.trainer import Trainer
from tests.tuning.tiny import TINY_OVERRIDES, as_flags

EPOCHS = 3


def test_epoch_batches_are_the_single_process_batches(tiny_config, tiny_store):
    data = load_conversations(tiny_store)
    train = data.split("train")
    for epoch in range(3):
        generator = torch.Generator().manual_seed(derive_seed(tiny_config.train.seed, "shuffle", epoch))
        expected = [batch.dialog_ids for batch in iterate_batches(train, tiny_config.train.batch_size, shuffle=True, generator=generator)]
        got = [[train[i].dialog_id for i in batch] for batch in epoch_batches(len(train), tiny_config.train.batch_size, tiny_config.train.seed, epoch)]
        assert got == expected
    assert epoch_batches(10, 4, 0, 0) != epoch_batches(10, 4, 0, 1)


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_shards_partition_every_batch(world_size):
    for size in range(0, 10):
        batch = list(range(100, 100 + size))
        shards = [shard_of_batch(batch, rank, world_size) for rank in range(world_size)]
        assert [i for shard in shards for i in shard] == batch
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert [shard_of_batch([7, 8, 9], r, 2) for r in range(2)] == [[7], [8, 9]]


def _single_process_history(config, data, epochs):
    trainer = Trainer(config, data)
    history = []
    for epoch in range(epochs):
        stats = trainer.train_epoch(epoch=epoch)
        valid = trainer.evaluate("valid", keep_representations=False)
        history.append({"train_loss": stats["train_loss"], "valid_wf1": valid.weighted_f1, "nfe": stats["nfe"]})
    return history


@pytest.mark.slow
def test_one_worker_is_the_single_process_trainer_and_two_workers_match_it(ray_local, mlflow_server, repo_root,
                                                                           tiny_config, tiny_store, tmp_path):
    from mlflow import MlflowClient

    data = load_conversations(tiny_store)
    reference = _single_process_history(tiny_config, data, EPOCHS)
    storage = str(tmp_path / "train")

    # One worker, through the job script: tracked in MLflow, best model tested and registered.
    args = ["--data.store", str(tiny_store), *as_flags(TINY_OVERRIDES), "--num_workers", "1",
            "--storage_path", storage, "--name", "one", "--tracking_uri", mlflow_server, "--experiment", "train-job"]
    assert main(["train-ray", *args]) == 0
    client = MlflowClient(mlflow_server)
    (run,) = client.search_runs([client.get_experiment_by_name("train-job").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["dgnode.run_kind"] == "train"
    def history(key):
        return sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)

    one = [{"epoch": m.step, "train_loss": m.value} for m in history("train_loss")]
    for key in ("valid_wf1", "nfe"):
        for row, metric in zip(one, history(key)):
            assert metric.step == row["epoch"]
            row[key] = metric.value
    assert [h["epoch"] for h in one] == list(range(EPOCHS))
    for ours, theirs in zip(one, reference):
        # Same batches, same dropout stream, same loss up to summation order.
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-6, abs=1e-7)
        assert ours["valid_wf1"] == pytest.approx(theirs["valid_wf1"], abs=1e-9)
        assert ours["nfe"] == theirs["nfe"] == 8.0  # rk4, step 0.5 over T = 1: 2 steps x 4 evaluations
    assert run.data.metrics["best_valid_wf1"] == pytest.approx(max(h["valid_wf1"] for h in reference), abs=1e-9)
    assert 0.0 <= run.data.metrics["test_wf1"] <= 1.0
    (version,) = client.search_model_versions("name='train-job'")
    assert version.run_id == run.info.run_id

    # Two workers, interrupted after 2 epochs and relaunched under the same name: the second
    # launch resumes from the epoch-2 checkpoint and trains epoch 2 only.
    settings = DistributedSettings(num_workers=2, storage_path=storage, name="two")
    first = run_distributed(tiny_config, settings, epochs=2)
    assert len(first.history) == 2
    resumed = run_distributed(tiny_config, settings)
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2]
    assert resumed.history[:2] == first.history  # restored from the checkpoint, not re-run (same epoch_time)
    for ours, theirs in zip(resumed.history, one):
        # Averaged shard gradients are the full-batch gradient: equal up to float rounding.
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
        assert ours["valid_wf1"] == pytest.approx(theirs["valid_wf1"], abs=1e-6)
    assert resumed.best_valid_wf1 == pytest.approx(max(h["valid_wf1"] for h in resumed.history), abs=1e-12)

    # The checkpoint's best.pt is the best epoch's model: it scores best_valid_wf1 on valid again.
    best = torch.load(f"{resumed.checkpoint_path}/best.pt", map_location="cpu", weights_only=True)
    trainer = Trainer(tiny_config, data)
    trainer.load_state_dict(best)
    assert best["best_epoch"] == resumed.best_epoch
    assert trainer.evaluate("valid").weighted_f1 == pytest.approx(resumed.best_valid_wf1, abs=1e-9)
    assert math.isfinite(resumed.history[-1]["train_loss"])
