"""Trainer options: parameter groups, LR schedules (stepped by the loop, resumed from state_dict),
bf16 autocast plumbing, strict deterministic algorithms."""

from __future__ import annotations

import math

import pytest
import torch

from dgnode.features.dataset import collate
from dgnode.models import build_model
from dgnode.options import ConfigError
from dgnode.training.config import load_train_config
from dgnode.training.loop import Hooks, run_epochs
from dgnode.training.reproducibility import NondeterministicOp, explain_nondeterminism
from dgnode.training.trainer import Trainer

FAST = {"report.plots": False, "train.epochs": 4, "train.patience": 0}


def trainer_for(data, fast_config_path, **overrides) -> Trainer:
    return Trainer(load_train_config(fast_config_path, {**FAST, **overrides}), data)


class Recorder(Hooks):
    def __init__(self) -> None:
        self.epochs: list[dict] = []

    def end_epoch(self, trainer, metrics, history) -> None:
        self.epochs.append(dict(metrics))


def test_no_weight_decay_on_one_dimensional_parameters(small_data, fast_config_path):
    trainer = trainer_for(small_data, fast_config_path, **{"optim.weight_decay": 1e-3})
    decayed, plain = trainer.optimizer.param_groups
    assert decayed["weight_decay"] == 1e-3 and plain["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decayed["params"]) and all(p.ndim == 1 for p in plain["params"])
    model = trainer.core_model
    no_decay = {id(p) for p in plain["params"]}
    assert id(model.mixhop[0].hop_logits) in no_decay and id(model.ode.mixing.spectrum_logit) in no_decay
    assert id(model.classifier.hidden_layer.bias) in no_decay
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))
    everything = trainer_for(small_data, fast_config_path, **{"optim.decay_1d": True}).optimizer.param_groups
    assert len(everything) == 1 and everything[0]["weight_decay"] == 1e-5


def test_plateau_lowers_the_rate_after_patience_epochs_without_a_lower_valid_loss(small_data, fast_config_path):
    trainer = trainer_for(small_data, fast_config_path, **{"optim.schedule": "plateau", "optim.plateau_patience": 1,
                                                            "optim.plateau_factor": 0.5, "optim.lr": 0.01})
    rates = []
    for loss in (1.0, 0.9, 0.95, 0.95, 0.95, 0.95):  # reduced after 2 epochs > patience 1 without a new best
        trainer.step_schedule(loss)
        rates.append(trainer.lr)
    assert rates == pytest.approx([0.01, 0.01, 0.01, 0.005, 0.005, 0.0025])


def test_cosine_anneals_over_the_configured_epochs_and_the_loop_steps_it(small_data, fast_config_path):
    trainer = trainer_for(small_data, fast_config_path, **{"optim.schedule": "cosine", "optim.lr": 0.004})
    recorder = Recorder()
    run_epochs(trainer, recorder)
    expected = [0.004 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert [m["lr"] for m in recorder.epochs] == pytest.approx(expected)
    assert trainer.lr == pytest.approx(0.0, abs=1e-12)


def test_constant_rate_by_default(small_data, fast_config_path):
    trainer = trainer_for(small_data, fast_config_path, **{"train.epochs": 2})
    recorder = Recorder()
    run_epochs(trainer, recorder)
    assert trainer.schedule is None and [m["lr"] for m in recorder.epochs] == [3e-3, 3e-3]


@pytest.mark.parametrize("schedule", ["plateau", "cosine"])
def test_resuming_restores_the_schedule(small_data, fast_config_path, schedule):
    overrides = {"optim.schedule": schedule, "optim.plateau_patience": 0, "optim.plateau_factor": 0.5}
    straight = trainer_for(small_data, fast_config_path, **overrides)
    straight_log = Recorder()
    run_epochs(straight, straight_log)

    first = trainer_for(small_data, fast_config_path, **overrides)
    run_epochs(first, Recorder(), epochs=2)
    resumed = trainer_for(small_data, fast_config_path, **overrides)
    resumed.load_state_dict(first.state_dict())
    assert resumed.lr == first.lr and resumed.schedule.state_dict() == first.schedule.state_dict()
    if schedule == "cosine":
        assert resumed.lr != 3e-3
    else:
        assert resumed.schedule.best == first.schedule.best < math.inf  # the valid loss to beat
    resumed_log = Recorder()
    run_epochs(resumed, resumed_log)
    assert [m["lr"] for m in resumed_log.epochs] == [m["lr"] for m in straight_log.epochs[2:]]
    for (name, a), (_, b) in zip(straight.core_model.state_dict().items(), resumed.core_model.state_dict().items()):
        assert torch.equal(a, b), name
    assert "schedule" not in resumed.model_state()


def test_schedule_options_are_validated(fast_config_path):
    with pytest.raises(ConfigError, match="optim.schedule"):
        load_train_config(fast_config_path, {"optim.schedule": "step"})
    with pytest.raises(ConfigError, match="plateau_factor"):
        load_train_config(fast_config_path, {"optim.plateau_factor": 1.5})


def test_amp_is_cuda_only_and_the_graph_layers_run_under_bf16_autocast(small_data, fast_config_path):
    trainer = trainer_for(small_data, fast_config_path, **{"train.amp": True})
    with trainer.autocast():  # CPU: no autocast at all
        assert not torch.is_autocast_enabled("cpu")
    # On CUDA the forward pass runs under bf16 autocast; the same plumbing on CPU autocast: the
    # sparse products and the ODE receive bf16 activations and keep float32 precision.
    from tests.models.conftest import DIMS, make_conversations

    batch = collate(make_conversations([5, 3, 7]))
    for ode in ({"method": "exact"}, {"method": "rk4", "step_size": 0.5}, {"method": "dopri5"}):
        torch.manual_seed(0)
        model = build_model({"name": "dgode", "hidden": 8, "dropout": 0.0, "ode": ode}, DIMS, 2, 3).eval()
        with torch.no_grad():
            full = model(batch).logits
            with torch.autocast("cpu", dtype=torch.bfloat16):
                half = model(batch).logits
        assert torch.isfinite(half).all()
        torch.testing.assert_close(half.float(), full, rtol=0.05, atol=0.05)


def test_deterministic_is_strict_and_its_error_names_the_option(small_data, fast_config_path):
    trainer_for(small_data, fast_config_path)
    assert torch.are_deterministic_algorithms_enabled()
    assert not torch.is_deterministic_algorithms_warn_only_enabled()
    with pytest.raises(NondeterministicOp, match="set train.deterministic false"):
        with explain_nondeterminism():
            raise RuntimeError("index_add_cuda_ does not have a deterministic implementation, but you set "
                               "'torch.use_deterministic_algorithms(True)'")
    with pytest.raises(RuntimeError, match="other"):
        with explain_nondeterminism():
            raise RuntimeError("other")
    trainer_for(small_data, fast_config_path, **{"train.deterministic": False})
    assert not torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
