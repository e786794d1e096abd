"""Spectral bounds of Â: exact per dialogue, valid for batches, and the claims of the docstrings."""

from __future__ import annotations

import pytest
import torch

from dgnode.graph import SpectralBounds, batch_spectral_bounds, build_edges, dialogue_spectral_bounds, normalized_adjacency


def dense_adjacency(lengths: list[int], modalities: int, wp: int, wf: int, alpha: float) -> torch.Tensor:
    dialog_index = torch.cat([torch.full((n,), i) for i, n in enumerate(lengths)])
    position = torch.cat([torch.arange(n) for n in lengths])
    graph = build_edges(dialog_index, position, torch.tensor(lengths), modalities, wp, wf)
    return normalized_adjacency(graph, alpha, dtype=torch.float64, layout=torch.sparse_coo).to_dense()


WINDOWS = [(-1, -1), (2, 2), (-1, 0), (3, 0), (11, 5), (1, 4)]


@pytest.mark.parametrize("wp,wf", WINDOWS)
def test_batch_bounds_equal_the_dense_batch_values(wp, wf):
    lengths = [7, 1, 12, 4]
    dense = dense_adjacency(lengths, 3, wp, wf, 0.8)
    bounds = batch_spectral_bounds(torch.tensor(lengths), 3, wp, wf, 0.8)
    assert bounds.symmetric_max == pytest.approx(float(torch.linalg.eigvalsh((dense + dense.t()) / 2).max()), rel=1e-9)
    assert bounds.norm == pytest.approx(float(torch.linalg.matrix_norm(dense, ord=2)), rel=1e-9)
    cheap = SpectralBounds.of_matrix(dense.to_sparse_coo())
    assert cheap.symmetric_max >= bounds.symmetric_max - 1e-12 and cheap.norm >= bounds.norm - 1e-12
    from_dense = SpectralBounds.of_matrix(dense)
    assert from_dense.symmetric_max == pytest.approx(cheap.symmetric_max, rel=1e-12)
    assert from_dense.norm == pytest.approx(cheap.norm, rel=1e-12)


@pytest.mark.parametrize("wp,wf", WINDOWS)
def test_what_the_docstrings_claim(wp, wf):
    alpha = 0.9
    for length in (2, 9, 30):
        dense = dense_adjacency([length], 3, wp, wf, alpha)
        bounds = dialogue_spectral_bounds(length, 3, wp, wf, alpha)
        eigenvalues = torch.linalg.eigvals(dense)
        assert eigenvalues.real.max() <= bounds.symmetric_max + 1e-9  # the numerical range bound
        if wp == wf:  # undirected: symmetric, spectrum in [0, α]
            assert torch.equal(dense, dense.t())
            assert bounds.symmetric_max == pytest.approx(alpha) and bounds.norm == pytest.approx(alpha)
        if wf == 0:  # causal: real eigenvalues in [0, α] (block-triangular, symmetric diagonal blocks) ...
            order = torch.arange(3 * length).view(3, length).t().reshape(-1)  # utterance-major
            permuted = dense[order][:, order]
            block = torch.arange(3 * length) // 3
            assert (permuted[block[:, None] < block[None, :]] == 0).all()
            for u in range(length):
                diagonal_block = permuted[3 * u: 3 * u + 3, 3 * u: 3 * u + 3]
                assert torch.equal(diagonal_block, diagonal_block.t())
                eigenvalues_u = torch.linalg.eigvalsh(diagonal_block)
                assert eigenvalues_u.min() >= -1e-12 and eigenvalues_u.max() <= alpha + 1e-12
        if wf == 0 and wp == -1 and length >= 9:  # ... yet Â - I is not negative definite
            assert bounds.symmetric_max > 1.0


def test_causal_symmetric_part_grows_with_the_dialogue():
    values = [dialogue_spectral_bounds(n, 3, -1, 0, 0.9).symmetric_max for n in (5, 60, 110)]
    assert values == sorted(values)
    assert values[-1] == pytest.approx(1.529, abs=1e-3)  # the number quoted in the docstrings
