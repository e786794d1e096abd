"""AdaptiveMixHop equals the formula with explicit dense adjacency powers."""

from __future__ import annotations

import torch

from dgnode.graph import adjacency_operator, build_edges, normalized_adjacency
from dgnode.models.mixhop import AdaptiveMixHop


def test_mixhop_equals_dense_adjacency_powers():
    torch.manual_seed(0)
    lengths = torch.tensor([4, 3])
    dialog_index = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    position = torch.tensor([0, 1, 2, 3, 0, 1, 2])
    graph = build_edges(dialog_index, position, lengths, modalities=2, wp=2, wf=1)
    layer = AdaptiveMixHop(5, 3, hops=4).double()
    with torch.no_grad():
        layer.hop_logits.copy_(torch.tensor([0.3, -1.0, 2.0, 0.5], dtype=torch.float64))
    x = torch.randn(graph.num_nodes, 5, dtype=torch.float64)
    x0 = torch.randn(graph.num_nodes, 3, dtype=torch.float64)
    dense = normalized_adjacency(graph, alpha=0.9, dtype=torch.float64).to_dense()
    w = torch.softmax(torch.tensor([0.3, -1.0, 2.0, 0.5], dtype=torch.float64), 0)
    weight = layer.linear.weight.t()
    expected = x0 + sum(w[k - 1] * torch.linalg.matrix_power(dense, k) @ x @ weight for k in range(1, 5))

    for adjacency in (normalized_adjacency(graph, 0.9, dtype=torch.float64), adjacency_operator(graph, 0.9, dtype=torch.float64)):
        torch.testing.assert_close(layer(x, adjacency, x0), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(layer.hop_weights().sum(), torch.tensor(1.0, dtype=torch.float64))


def test_hop_weights_start_uniform_and_learn():
    layer = AdaptiveMixHop(2, 2, hops=3)
    torch.testing.assert_close(layer.hop_weights(), torch.full((3,), 1 / 3))
    graph = build_edges(torch.tensor([0, 0]), torch.tensor([0, 1]), torch.tensor([2]), 1, -1, -1)
    out = layer(torch.ones(2, 2), adjacency_operator(graph, 0.9), torch.zeros(2, 2))
    out.sum().backward()
    assert layer.hop_logits.grad is not None and layer.hop_logits.grad.abs().sum() > 0
