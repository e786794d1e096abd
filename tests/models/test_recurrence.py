"""The CPU context GRU equals the packed nn.GRU (values and gradients), alone and batched."""

from __future__ import annotations

import pytest
import torch

from dgnode.features.dataset import collate
from dgnode.models.recurrence import ContextEncoder, encode_contexts

from .conftest import make_conversations


@pytest.mark.parametrize("causal,layers", [(False, 1), (True, 1), (False, 2), (True, 3)])
def test_batched_recurrence_equals_packed_gru(causal, layers):
    torch.manual_seed(0)
    batch = collate(make_conversations([5, 1, 8, 3]))
    dims = {"text": 6, "audio": 5, "vision": 4}
    encoders = [ContextEncoder(d, 8, causal=causal, num_layers=layers).double() for d in dims.values()]
    features = [batch.features[m].double().requires_grad_() for m in dims]
    args = (batch.dialog_index, batch.position, batch.lengths)
    fast = encode_contexts(encoders, features, *args)
    weights = [torch.randn_like(f) for f in fast]
    sum((f * w).sum() for f, w in zip(fast, weights)).backward()
    fast_grads = [f.grad.clone() for f in features] + [p.grad.clone() for e in encoders for p in e.parameters()]
    for tensor in [*features, *(p for e in encoders for p in e.parameters())]:
        tensor.grad = None
    packed = [e.packed(x, *args) for e, x in zip(encoders, features)]
    sum((f * w).sum() for f, w in zip(packed, weights)).backward()
    packed_grads = [f.grad for f in features] + [p.grad for e in encoders for p in e.parameters()]
    for a, b in zip(fast, packed):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    for a, b in zip(fast_grads, packed_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert torch.equal(encoders[0](features[0], *args), fast[0])  # alone = batched with others


def test_encoders_of_different_widths_run_in_separate_groups():
    torch.manual_seed(0)
    batch = collate(make_conversations([4, 6]))
    encoders = [ContextEncoder(6, 8, causal=False), ContextEncoder(5, 4, causal=False)]
    features = [batch.features["text"], batch.features["audio"]]
    args = (batch.dialog_index, batch.position, batch.lengths)
    out = encode_contexts(encoders, features, *args)
    assert [o.shape[1] for o in out] == [8, 4]
    for o, e, x in zip(out, encoders, features):
        torch.testing.assert_close(o, e.packed(x, *args), rtol=1e-5, atol=1e-6)
