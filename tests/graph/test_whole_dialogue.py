"""WholeDialogueOperator: the same matrix as normalized_adjacency for whole-dialogue graphs, its
gradient, bf16 autocast, and structured_operator's choice between it and the CSR operator."""

from __future__ import annotations

import pytest
import torch

from dgnode.graph import SparseOperator, WholeDialogueOperator, build_edges, normalized_adjacency, structured_operator
from tests.graph.support import assert_product_and_gradient_match_dense


def rows(lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    lengths_t = torch.tensor(lengths)
    dialog_index = torch.repeat_interleave(torch.arange(len(lengths)), lengths_t)
    position = torch.cat([torch.arange(n) for n in lengths])
    return dialog_index, position, lengths_t


@pytest.mark.parametrize("modalities", [1, 2, 3])
@pytest.mark.parametrize("lengths", [[5, 1, 7, 3], [1], [2, 2]], ids=["mixed", "single", "pairs"])
def test_whole_dialogue_operator_is_the_normalized_adjacency(modalities, lengths):
    dialog_index, position, lengths_t = rows(lengths)
    graph = build_edges(dialog_index, position, lengths_t, modalities, -1, -1)
    operator = structured_operator(graph, 0.9, dialog_index, lengths_t, dtype=torch.float64)
    assert isinstance(operator, WholeDialogueOperator) and operator.shape == (graph.num_nodes, graph.num_nodes)
    expected = normalized_adjacency(graph, 0.9, dtype=torch.float64, layout=torch.sparse_coo).to_dense()
    torch.testing.assert_close(operator.to_dense(), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("wp, wf", [(-1, 0), (2, 0), (3, 1), (11, 5), (-1, 4)])
def test_windowed_graphs_keep_the_sparse_operator(wp, wf):
    dialog_index, position, lengths = rows([6, 2, 9])
    graph = build_edges(dialog_index, position, lengths, 3, wp, wf)
    operator = structured_operator(graph, 0.9, dialog_index, lengths, dtype=torch.float64)
    assert isinstance(operator, SparseOperator)
    torch.testing.assert_close(operator.to_dense(),
                               normalized_adjacency(graph, 0.9, dtype=torch.float64, layout=torch.sparse_coo).to_dense())


def test_gradient_matches_the_dense_product():
    dialog_index, position, lengths = rows([4, 6, 1])
    graph = build_edges(dialog_index, position, lengths, 3, -1, -1)
    operator = structured_operator(graph, 0.7, dialog_index, lengths)
    dense = normalized_adjacency(graph, 0.7, layout=torch.sparse_coo).to_dense()
    assert_product_and_gradient_match_dense(operator, dense, width=5)


def test_product_runs_in_the_operator_dtype_under_bf16_autocast():
    dialog_index, position, lengths = rows([3, 4])
    graph = build_edges(dialog_index, position, lengths, 2, -1, -1)
    operator = structured_operator(graph, 0.9, dialog_index, lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = operator @ torch.ones(graph.num_nodes, 2, dtype=torch.bfloat16)
    assert out.dtype == torch.float32


def test_rejects_an_alpha_outside_its_range():
    dialog_index, position, lengths = rows([2])
    with pytest.raises(ValueError, match="alpha"):
        structured_operator(build_edges(dialog_index, position, lengths, 1, -1, -1), 0.0, dialog_index, lengths)
