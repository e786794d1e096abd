"""The transformer text encoder that attends at the input width (CORECT's release, DGODE's option)."""

from __future__ import annotations

import pytest
import torch

from dgnode.features.dataset import collate
from dgnode.models.dialogue_transformer import DialogueTransformer, default_heads

from .conftest import make_conversations  # noqa: F401  (importlib mode resolves the package-relative import)


@pytest.mark.parametrize("width,heads", [(1024, 8), (768, 8), (100, 10), (1582, 7), (342, 9), (6, 1), (13, 13)])
def test_default_heads_is_the_smallest_of_7_to_14_dividing_the_width(width, heads):
    assert default_heads(width) == heads


def encoder(in_dim: int = 20, hidden: int = 6, causal: bool = False, heads: int | None = None) -> DialogueTransformer:
    torch.manual_seed(0)
    return DialogueTransformer(in_dim, hidden, layers=2, heads=heads, feedforward=16, dropout=0.5, causal=causal).eval()


def run(model: DialogueTransformer, conversations) -> torch.Tensor:
    batch = collate(conversations)
    with torch.no_grad():
        return model(batch.features["text"], batch.dialog_index, batch.position, batch.lengths)


def test_attention_runs_at_the_input_width_post_norm_then_projects():
    model = encoder(20, 6)
    layer = model.encoder.layers[0]
    assert len(model.encoder.layers) == 2 and model.heads == 10  # 20: smallest divisor in 7..14 is 10
    assert layer.self_attn.embed_dim == 20 and layer.self_attn.num_heads == 10
    assert layer.linear1.out_features == 16 and not layer.norm_first  # post-norm, as the release
    assert (model.projection.in_features, model.projection.out_features) == (20, 6)
    assert run(model, make_conversations([4, 2], {"text": 20})).shape == (6, 6)
    with pytest.raises(ValueError, match="input width 20 is not divisible by 3 attention heads"):
        encoder(20, 6, heads=3)


@pytest.mark.parametrize("causal", [False, True])
def test_padding_is_masked_so_batch_mates_do_not_matter(causal):
    model = encoder(causal=causal)
    conversations = make_conversations([5, 2, 7], {"text": 20})
    batched = run(model, conversations)
    single = torch.cat([run(model, [c]) for c in conversations])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5)


def test_causal_outputs_ignore_later_utterances_bit_for_bit_and_offline_ones_do_not():
    conversations = make_conversations([6, 4], {"text": 20})
    for causal in (True, False):
        model = encoder(causal=causal)
        before = run(model, conversations)
        conversations[0].features["text"][3:] += 5.0
        after = run(model, conversations)
        conversations[0].features["text"][3:] -= 5.0
        assert torch.equal(before[:3], after[:3]) == causal
        assert torch.equal(before[6:], after[6:])  # the other dialogue
