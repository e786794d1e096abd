"""normalized_adjacency against a dense computation; SparseOperator gradients."""

from __future__ import annotations

import torch

from dgnode.graph import SparseOperator, adjacency_operator, build_edges, normalized_adjacency
from tests.graph.support import assert_product_and_gradient_match_dense


def small_graph(wp: int = 1, wf: int = 0, modalities: int = 2):
    lengths = torch.tensor([3, 2])
    dialog_index = torch.tensor([0, 0, 0, 1, 1])
    position = torch.tensor([0, 1, 2, 0, 1])
    return build_edges(dialog_index, position, lengths, modalities, wp, wf)


def dense_reference(graph, alpha: float) -> torch.Tensor:
    v = graph.num_nodes
    a = torch.zeros(v, v, dtype=torch.float64)
    for s, t in graph.edge_index.t().tolist():
        a[t, s] += 1.0  # row = target
    degree = a.sum(1)
    inv_sqrt = torch.where(degree > 0, degree.pow(-0.5), torch.zeros_like(degree))
    return alpha / 2 * (torch.eye(v, dtype=torch.float64) + inv_sqrt[:, None] * a * inv_sqrt[None, :])


def test_matches_dense_formula_for_a_directed_causal_graph():
    graph = small_graph(wp=1, wf=0)
    adjacency = normalized_adjacency(graph, alpha=0.8)
    assert adjacency.layout == torch.sparse_csr
    torch.testing.assert_close(adjacency.to_dense().double(), dense_reference(graph, 0.8), rtol=0, atol=1e-7)
    # Node 0 (first utterance, modality 0) receives only from its modality-1 twin: degree 1.
    # Node 1 receives from node 0 (degree 1 there) and its twin: weight 0.4 * 2^-1/2 * 1^-1/2.
    dense = adjacency.to_dense()
    assert abs(dense[1, 0].item() - 0.4 / 2**0.5) < 1e-7
    assert abs(dense[0, 0].item() - 0.4) < 1e-7


def test_coo_layout_and_isolated_nodes():
    # One dialogue of one utterance in one modality: no edges; Â = α/2.
    graph = build_edges(torch.tensor([0]), torch.tensor([0]), torch.tensor([1]), 1, -1, -1)
    adjacency = normalized_adjacency(graph, alpha=0.5, layout=torch.sparse_coo)
    assert adjacency.layout == torch.sparse_coo
    assert adjacency.to_dense().tolist() == [[0.25]]


def test_symmetric_graph_spectrum_lies_in_zero_alpha():
    graph = small_graph(wp=-1, wf=-1, modalities=3)
    dense = normalized_adjacency(graph, alpha=0.9).to_dense().double()
    torch.testing.assert_close(dense, dense.t())
    eigenvalues = torch.linalg.eigvalsh(dense)
    assert eigenvalues.min() >= -1e-9 and eigenvalues.max() <= 0.9 + 1e-9


def test_sparse_operator_product_and_gradient_match_dense():
    graph = small_graph(wp=2, wf=0, modalities=2)
    operator = adjacency_operator(graph, alpha=0.7)
    dense = normalized_adjacency(graph, alpha=0.7).to_dense()
    torch.testing.assert_close(operator.to_dense(), dense)
    assert_product_and_gradient_match_dense(operator, dense, width=4)
    assert isinstance(operator, SparseOperator)
