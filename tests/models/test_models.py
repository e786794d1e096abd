"""DGODE and the baselines: causality, batching, ablation switches, the registry."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from dgnode.options import ConfigError
from dgnode.features.dataset import collate
from dgnode.models import ModelConfig, ModelOutput, available_models, build_model, model_config_from_dict, register_model
from dgnode.models.dgode import DGODE, DGODEConfig

from .conftest import DIMS, make_conversations  # noqa: F401  (importlib mode resolves the package-relative import)


def fixed_step(**extra) -> dict:
    return {"name": "dgode", "hidden": 8, "dropout": 0.3, "ode": {"method": "rk4", "step_size": 0.25}, **extra}


def build(config: dict, dims: dict[str, int] = DIMS) -> nn.Module:
    torch.manual_seed(0)
    return build_model(config, dims, num_speakers=2, num_classes=3).eval()


def logits_after_changing(model: nn.Module, conversations, dialog: int, utterance: int) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        before = model(collate(conversations)).logits
        for features in conversations[dialog].features.values():
            features[utterance] += 5.0
        after = model(collate(conversations)).logits
    return before, after


@pytest.mark.parametrize(
    "config",
    [
        fixed_step(wf=0),
        fixed_step(wf=0, wp=2),
        fixed_step(wf=0, ode={"method": "euler", "step_size": 0.5}, mixhop={"hops": 2, "layers": 2}),
        {"name": "bigru", "hidden": 8, "causal": True},
        fixed_step(wf=0, text_encoder="transformer", text_feedforward=8),
    ],
    ids=["dgode-rk4", "dgode-window2", "dgode-euler-2layers", "bigru", "dgode-text-transformer"],
)
def test_causal_mode_earlier_predictions_ignore_later_utterances_exactly(config):
    model = build(config)
    conversations = make_conversations([6, 4, 5])
    before, after = logits_after_changing(model, conversations, dialog=0, utterance=3)
    # rows 0..2 are dialogue 0's utterances before the changed one: bit-identical
    assert torch.equal(before[:3], after[:3])
    assert not torch.allclose(before[3:6], after[3:6])  # the changed utterance and later ones move
    assert torch.equal(before[6:], after[6:])  # other dialogues are untouched


@pytest.mark.parametrize("config", [fixed_step(), {"name": "bigru", "hidden": 8}], ids=["dgode", "bigru"])
def test_non_causal_models_do_look_ahead(config):
    model = build(config)
    before, after = logits_after_changing(model, make_conversations([6]), dialog=0, utterance=4)
    assert not torch.allclose(before[:4], after[:4])


def test_causal_dgode_uses_forward_only_encoders():
    model = build(fixed_step(wf=0))
    assert all(not encoder.gru.bidirectional and encoder.gru.hidden_size == 8 for encoder in model.encoders.values())
    model = build(fixed_step())
    assert all(encoder.gru.bidirectional and encoder.gru.hidden_size == 4 for encoder in model.encoders.values())


@pytest.mark.parametrize("name", ["dgode", "dgode-text-transformer", "mlp", "bigru"])
def test_fixed_step_batch_equals_dialogues_one_at_a_time(name):
    config = {"dgode": fixed_step(), "dgode-text-transformer": fixed_step(text_encoder="transformer")}.get(
        name, {"name": name, "hidden": 8})
    model = build(config)
    conversations = make_conversations([5, 2, 7, 1])
    with torch.no_grad():
        batched = model(collate(conversations)).logits
        single = torch.cat([model(collate([c])).logits for c in conversations])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-6)


def test_adaptive_solver_batch_agrees_within_tolerance():
    # dopri5 picks one step sequence for the whole batch (error norm over all nodes), so a
    # dialogue's output depends on its batch-mates at the level of the tolerance.
    model = build({"name": "dgode", "hidden": 8, "ode": {"method": "dopri5", "rtol": 1e-6, "atol": 1e-8}})
    conversations = make_conversations([5, 2, 7, 1])
    with torch.no_grad():
        batched = model(collate(conversations)).logits
        single = torch.cat([model(collate([c])).logits for c in conversations])
    torch.testing.assert_close(batched, single, rtol=0, atol=1e-4)


def test_outputs_shapes_and_nfe(batch):
    for config, nfe, width in [
        (fixed_step(), 16, 3 * 8),
        (fixed_step(use_ode=False), 0, 3 * 8),
        ({"name": "mlp", "hidden": 8}, 0, 8),
        ({"name": "bigru", "hidden": 8}, 0, 8),
    ]:
        output = build(config)(batch)
        assert isinstance(output, ModelOutput)
        assert output.logits.shape == (15, 3)
        assert output.representations.shape == (15, width)
        assert output.nfe == nfe


@pytest.mark.parametrize(
    "changes,absent",
    [
        ({"use_speaker": False}, "speaker_embedding"),
        ({"use_mixhop": False}, "mixhop"),
        ({"use_ode": False}, "ode"),
    ],
)
def test_ablation_switches_remove_components(batch, changes, absent):
    model = build(fixed_step(**changes))
    assert getattr(model, absent) is None
    output = model(batch)
    output.logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())  # no dead parameters (DDP needs that)


def test_text_transformer_encoder_replaces_only_the_text_gru(batch):
    from dgnode.models.dialogue_transformer import DialogueTransformer
    from dgnode.models.recurrence import ContextEncoder

    model = build(fixed_step(text_encoder="transformer"), dims={"text": 20, "audio": 5, "vision": 4})
    assert isinstance(model.encoders["text"], DialogueTransformer) and model.encoders["text"].heads == 10
    assert model.encoders["text"].encoder.layers[0].self_attn.embed_dim == 20  # attends at the input width
    assert all(isinstance(model.encoders[m], ContextEncoder) for m in ("audio", "vision"))
    conversations = make_conversations([5, 3], {"text": 20, "audio": 5, "vision": 4})
    output = model.train()(collate(conversations))
    assert output.logits.shape == (8, 3)
    output.logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(ConfigError, match="model.text_heads 3 does not divide the text width 20"):
        build(fixed_step(text_encoder="transformer", text_heads=3), dims={"text": 20})


def test_modality_subset_comes_from_dims(batch):
    model = build(fixed_step(), dims={"text": DIMS["text"]})
    assert list(model.encoders) == ["text"]
    assert model(batch).representations.shape == (15, 8)


def test_missing_modality_in_batch_is_a_clear_error(batch):
    model = build(fixed_step(), dims={**DIMS})
    del batch.features["vision"]
    with pytest.raises(KeyError, match=r"batch lacks modalities \['vision'\]"):
        model(batch)


def test_registry_lists_builtins_and_rejects_unknown_names():
    assert {"dgode", "mlp", "bigru"} <= set(available_models())
    with pytest.raises(ConfigError, match="unknown model.name 'gcn'; available models: .*dgode"):
        build_model({"name": "gcn"}, DIMS, 2, 3)


def test_model_config_validation_names_the_key():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) model.window; valid keys under model: .*wf, wp"):
        model_config_from_dict({"name": "dgode", "window": 3})
    with pytest.raises(ConfigError, match="alpha must be in"):
        model_config_from_dict({"name": "dgode", "alpha": 1.5})
    with pytest.raises(ConfigError, match="hidden must be even"):
        build_model({"name": "dgode", "hidden": 7}, DIMS, 2, 3)
    assert build_model({"name": "dgode", "hidden": 7, "wf": 0}, DIMS, 2, 3).encoders["text"].gru.hidden_size == 7
    config = model_config_from_dict({"name": "dgode", "wf": 0, "ode": {"method": "rk4"}})
    assert isinstance(config, DGODEConfig) and config.causal and config.ode.method == "rk4"


@dataclass
class ConstantConfig(ModelConfig):
    name: str = "constant-test"
    value: float = 1.0


def test_registry_is_open_to_new_models(batch):
    class Constant(nn.Module):
        def __init__(self, config, num_classes):
            super().__init__()
            self.bias = nn.Parameter(torch.full((num_classes,), config.value))

        def forward(self, batch):
            return ModelOutput(logits=self.bias.expand(batch.labels.shape[0], -1))

    @register_model("constant-test", ConstantConfig)
    def build_constant(config, dims, num_speakers, num_classes):
        return Constant(config, num_classes)

    model = build_model({"name": "constant-test", "value": 2.5}, DIMS, 2, 3)
    assert model(batch).logits.shape == (15, 3)
    assert model(batch).logits[0, 0].item() == 2.5
    assert "constant-test" in available_models()


def test_dgode_is_the_default_model():
    assert isinstance(build({"hidden": 8}), DGODE)
