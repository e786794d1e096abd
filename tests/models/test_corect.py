"""CORECT: config validation, shapes, relations, exact causality, switches, and learning on
synthetic features over the real IEMOCAP structure."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from dgnode.options import ConfigError
from dgnode.features.dataset import collate
from dgnode.graph import build_edges
from dgnode.models import build_model, model_config_from_dict
from dgnode.models.corect import CORECT, CORECTConfig
from dgnode.models.corect_layers import AttentionBlock, AttentionStack, future_mask, padding_mask
from dgnode.models.dialogue_transformer import DialogueTransformer

from .conftest import DIMS, make_conversations  # noqa: F401  (importlib mode resolves the package-relative import)


def small(**extra) -> dict:
    config = {"name": "corect", "hidden": 8, "dropout": 0.3, "rtgraph": {"heads": 2}, "pcm": {"heads": 2, "layers": 1, "memory_layers": 1}}
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def build(config: dict, dims: dict[str, int] = DIMS) -> nn.Module:
    torch.manual_seed(0)
    return build_model(config, dims, num_speakers=2, num_classes=3).eval()


def test_registered_under_model_name_corect_with_paper_defaults():
    config = model_config_from_dict({"name": "corect"})
    assert isinstance(config, CORECTConfig)
    assert (config.hidden, config.dropout, config.wp, config.wf) == (100, 0.5, 11, 5)
    assert (config.rtgraph.heads, config.rtgraph.norm, config.pcm.layers, config.pcm.heads, config.pcm.memory_layers) == (7, "batch", 2, 2, 3)
    assert (config.text_encoder, config.encoder_layers, config.encoder_heads, config.encoder_feedforward) == ("transformer", 2, None, 2048)
    assert not config.causal and model_config_from_dict({"name": "corect", "wf": 0}).causal
    assert isinstance(build(small()), CORECT)


@pytest.mark.parametrize(
    "data,message",
    [
        ({"name": "corect", "windows": 3}, "unknown key(s) model.windows"),
        ({"name": "corect", "text_encoder": "lstm"}, "model.text_encoder: expected one of 'linear', 'gru', 'transformer'"),
        ({"name": "corect", "hidden": 9, "text_encoder": "gru", "pcm": {"heads": 1}}, "hidden must be even"),
        ({"name": "corect", "encoder_heads": 0}, "encoder_heads and encoder_feedforward must be >= 1"),
        ({"name": "corect", "rtgraph": {"norm": "group"}}, "model.rtgraph.norm"),
        ({"name": "corect", "wf": -2}, "wf must be >= 0 or -1"),
        ({"name": "corect", "hidden": 10, "pcm": {"heads": 3}}, "not divisible by pcm.heads 3"),
        ({"name": "corect", "pcm": {"memory_layers": -1}}, "pcm.memory_layers >= 0"),
    ],
)
def test_bad_configs_are_refused_naming_the_key(data, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        model_config_from_dict(data)


def test_pcm_with_one_modality_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match="P-CM needs at least two modalities.*use_pcm=false"):
        build(small(), {"text": 6})
    output = build(small(use_pcm=False), {"text": 6})(collate(make_conversations([4], {"text": 6})))
    assert output.logits.shape == (4, 3)
    with pytest.raises(ConfigError, match="memory width hidden x \\(modalities - 1\\) = 16 is not divisible by model.pcm.memory_heads 3"):
        build(small(pcm={"memory_heads": 3}))


@pytest.mark.parametrize(
    "changes,width",
    [
        ({}, 3 * 2 * 8 + 3 * 2 * 8),  # RT-GRAPH (M K d) + P-CM (M (M-1) d)
        ({"use_pcm": False}, 3 * 2 * 8),
        ({"use_rtgraph": False}, 3 * 2 * 8),
        ({"use_rtgraph": False, "use_pcm": False}, 3 * 8),  # encoders straight to the classifier
        ({"rtgraph": {"heads": 3}, "pcm": {"memory_layers": 0}}, 3 * 3 * 8 + 3 * 2 * 8),
    ],
)
def test_representation_width_and_switches(batch, changes, width):
    model = build(small(**changes))
    assert (model.rtgraph is None) == (changes.get("use_rtgraph") is False)
    assert (model.pcm is None) == (changes.get("use_pcm") is False)
    output = model(batch)
    assert output.logits.shape == (15, 3)
    assert output.representations.shape == (15, width)
    assert output.nfe == 0


def test_speaker_switch_removes_the_embedding(batch):
    assert build(small()).speaker_embedding.weight.shape == (2, 8)
    assert build(small(use_speaker=False)).speaker_embedding is None


@pytest.mark.parametrize(
    "changes,relations",
    [
        ({}, 3 * 3 + 6),  # past, future, self per modality + 6 ordered modality pairs
        ({"wf": 0}, 3 * 2 + 6),  # causal: no future relation
        ({"rtgraph": {"self_loops": False}}, 3 * 2 + 6),
        ({"wf": 0, "wp": 0, "rtgraph": {"self_loops": False}}, 6),
    ],
)
def test_relations_are_compact_over_the_kinds_the_windows_produce(changes, relations):
    model = build(small(**changes))
    assert model.rtgraph.num_relations == relations
    assert model.rtgraph.rgcn.num_relations == relations
    batch = collate(make_conversations([5, 3]))
    config = model.config
    graph = build_edges(batch.dialog_index, batch.position, batch.lengths, 3, config.wp, config.wf, self_loops=config.rtgraph.self_loops)
    ids = model.rtgraph.relations(graph)
    assert sorted(set(ids.tolist())) == list(range(relations))  # every relation has edges, none unused


def test_an_edge_kind_the_graph_was_not_built_for_is_an_error():
    model = build(small(wf=0))
    batch = collate(make_conversations([4]))
    graph = build_edges(batch.dialog_index, batch.position, batch.lengths, 3, -1, -1, self_loops=True)  # has future edges
    with pytest.raises(ValueError, match="edge kinds \\[1\\]"):
        model.rtgraph.relations(graph)


def logits_after_changing(model: nn.Module, conversations, dialog: int, utterance: int) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        before = model(collate(conversations)).logits
        for features in conversations[dialog].features.values():
            features[utterance:] += 5.0
        conversations[dialog].speakers[utterance:] = 1 - conversations[dialog].speakers[utterance:]
        after = model(collate(conversations)).logits
    return before, after


@pytest.mark.parametrize(
    "changes",
    [
        {"wf": 0},
        {"wf": 0, "wp": 2},
        {"wf": 0, "wp": -1, "text_encoder": "transformer", "encoder_heads": 2, "audio_encoder": "gru"},
        {"wf": 0, "use_rtgraph": False},
        {"wf": 0, "use_pcm": False, "vision_encoder": "gru"},
        {"wf": 0, "use_speaker": False, "pcm": {"memory_layers": 2}},
        {"wf": 0, "rtgraph": {"norm": "layer"}},
    ],
    ids=["default", "window2", "transformer-text", "pcm-only", "rtgraph-only", "deep-memory", "layer-norm"],
)
def test_causal_mode_earlier_predictions_ignore_later_utterances_exactly(changes):
    model = build(small(**changes))
    conversations = make_conversations([7, 4, 6])
    before, after = logits_after_changing(model, conversations, dialog=0, utterance=3)
    assert torch.equal(before[:3], after[:3])  # dialogue 0 before the change: bit-identical
    assert not torch.allclose(before[3:7], after[3:7])  # the changed utterances move
    assert torch.equal(before[7:], after[7:])  # other dialogues are untouched


@pytest.mark.parametrize(
    "changes",
    [{}, {"use_pcm": False}, {"use_rtgraph": False}, {"wf": 1, "use_pcm": False, "text_encoder": "linear"}],
    ids=["default", "rtgraph", "pcm", "window1-rtgraph"],
)
def test_offline_mode_does_look_ahead(changes):
    model = build(small(**changes))
    before, after = logits_after_changing(model, make_conversations([6]), dialog=0, utterance=4)
    assert not torch.allclose(before[:4], after[:4])


def test_causal_mode_uses_forward_only_gru_and_masked_attention():
    causal = build(small(wf=0, text_encoder="transformer", encoder_heads=2, audio_encoder="gru"))
    offline = build(small(text_encoder="transformer", encoder_heads=2, audio_encoder="gru"))
    assert not causal.encoders["audio"].net.gru.bidirectional and causal.encoders["audio"].net.gru.hidden_size == 8
    assert offline.encoders["audio"].net.gru.bidirectional and offline.encoders["audio"].net.gru.hidden_size == 4
    assert causal.encoders["text"].net.causal and not offline.encoders["text"].net.causal


def test_attention_masks():
    assert future_mask(3).tolist() == [[False, True, True], [False, False, True], [False, False, False]]
    assert padding_mask(torch.tensor([2, 3]), 3).tolist() == [[False, False, True], [False, False, False]]
    block = AttentionBlock(4, 2, cross=True).eval()
    with pytest.raises(ValueError, match="needs a source sequence"):
        block(torch.zeros(1, 2, 4), None, torch.zeros(1, 2, dtype=torch.bool), causal=False)


@pytest.mark.parametrize("changes", [{}, {"wf": 0}, {"rtgraph": {"norm": "layer"}}], ids=["offline", "causal", "layer-norm"])
def test_batch_equals_dialogues_one_at_a_time(changes):
    # Padding is masked everywhere and the graph norm is per node in evaluation, so batch-mates do not matter.
    model = build(small(**changes, text_encoder="transformer", encoder_heads=2))
    conversations = make_conversations([5, 2, 7, 1])
    with torch.no_grad():
        batched = model(collate(conversations)).logits
        single = torch.cat([model(collate([c])).logits for c in conversations])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("changes", [{}, {"wf": 0}, {"text_encoder": "gru"}], ids=["offline", "causal", "gru"])
def test_every_parameter_gets_a_gradient(batch, changes):
    model = build(small(**changes)).train()
    model(batch).logits.sum().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []  # DDP needs no dead parameters


@pytest.mark.slow
def test_corect_beats_the_context_free_mlp_on_synthetic_iemocap(tmp_path, iemocap_structure_path):
    """Same seeds, epochs, batches and learning rate: context and cross-modal fusion pay off
    (measured: weighted F1 0.71 against 0.56)."""
    from dgnode.features.dataset import load_conversations
    from dgnode.features.synth import synthesize_features
    from dgnode.training.config import load_train_config
    from dgnode.training.loop import fit

    synthesize_features(iemocap_structure_path, tmp_path / "store", {"text": 32, "audio": 24, "vision": 16}, seed=0)
    data = load_conversations(tmp_path / "store")
    assert len(data.split("train")) == 108 and len(data.split("test")) == 31  # the real IEMOCAP structure
    shared = {"optim.lr": 3e-3, "train.epochs": 10, "train.batch_size": 4, "train.patience": 0, "train.seed": 0,
              "report.plots": False}
    scores = {}
    for name, model in {
        # Linear (context-free) encoders: the context comes from the RT-GRAPH and P-CM alone.
        "corect": {"model.name": "corect", "model.hidden": 32, "model.dropout": 0.2, "model.text_encoder": "linear",
                   "model.rtgraph.heads": 2, "model.pcm.layers": 1, "model.pcm.memory_layers": 0},
        "mlp": {"model.name": "mlp", "model.hidden": 32, "model.dropout": 0.2},
    }.items():
        result = fit(load_train_config(None, {**model, **shared}), data, tmp_path / name, progress=False)
        scores[name] = result.test.weighted_f1
    assert scores["corect"] > scores["mlp"] + 0.05, scores


def test_text_transformer_attends_at_the_input_width_with_the_release_heads():
    model = build(small(), {"text": 20, "audio": 5, "vision": 4})
    text = model.encoders["text"].net
    assert isinstance(text, DialogueTransformer) and text.heads == 10  # smallest of 7..14 dividing 20
    assert text.encoder.layers[0].self_attn.embed_dim == 20 and text.encoder.layers[0].linear1.out_features == 2048
    assert text.projection.out_features == 8
    with pytest.raises(ConfigError, match="model.encoder_heads 3 does not divide the input width 20"):
        build(small(encoder_heads=3), {"text": 20, "audio": 5, "vision": 4})


def test_cross_modal_stack_scales_its_inputs_and_shares_one_norm_per_block():
    torch.manual_seed(0)
    stack = AttentionStack(4, 2, layers=1, cross=True).eval()
    x, y = torch.randn(1, 3, 4), torch.randn(1, 3, 4)
    padding = torch.zeros(1, 3, dtype=torch.bool)
    block = stack.blocks[0]
    # The release's (MulT's) layer: inputs times sqrt(d), one LayerNorm for queries, keys and values.
    xs, ys = 2.0 * x, 2.0 * y
    attended, _ = block.attention(block.attention_norm(xs), block.attention_norm(ys), block.attention_norm(ys))
    z = xs + attended
    expected = stack.norm(z + block.feedforward(block.feedforward_norm(z)))
    with torch.no_grad():
        torch.testing.assert_close(stack(x, padding, causal=False, source=y), expected)


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_rtgraph_norm_choice(batch, norm):
    model = build(small(rtgraph={"norm": norm}))
    graph = model.rtgraph
    if norm == "batch":  # the release: BatchNorm after the graph transformer, nothing before it
        assert isinstance(graph.norm, nn.BatchNorm1d) and isinstance(graph.transformer_norm, nn.Identity)
    else:
        assert isinstance(graph.norm, nn.LayerNorm) and isinstance(graph.transformer_norm, nn.LayerNorm)
    assert model(batch).logits.shape == (15, 3)


def test_layer_norm_keeps_training_outputs_causal_and_batch_norm_does_not():
    conversations = make_conversations([7, 4, 6])
    for norm, exact in (("layer", True), ("batch", False)):
        model = build(small(wf=0, dropout=0.0, rtgraph={"norm": norm})).train()
        before, after = logits_after_changing(model, conversations, dialog=0, utterance=3)
        assert torch.equal(before[:3], after[:3]) == exact
