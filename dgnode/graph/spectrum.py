"""Spectral bounds of the normalised adjacency ``Â``: what the graph ODE's stability and the exact
solver's truncation rest on.

Two numbers bound everything the graph ODE ``dH/dt = (Â - I) H + H (W - I) + H_0`` needs from
``Â`` (:mod:`dgnode.models.graph_ode`):

* ``symmetric_max = λ_max((Â + Â^T) / 2)``, the top of ``Â``'s numerical range: every eigenvalue
  of ``Â`` has real part ``<= symmetric_max`` and ``||exp(t Â)||_2 <= exp(t symmetric_max)``;
* ``norm = ||Â||_2``: ``||Â^k||_2 <= norm^k``, which bounds the tail of a power series in ``Â``.

What they are for DGODE's graphs (``α`` the scale of :func:`~dgnode.graph.normalized_adjacency`,
measured with ``α = 0.9`` and three modalities):

* undirected (``wp == wf``, e.g. the whole dialogue both ways): ``Â`` is symmetric and both
  numbers are exactly ``α``;
* causal (``wf = 0``): ``Â`` is block lower-triangular over utterances with symmetric diagonal
  blocks, so its eigenvalues are real and in ``[0, α]``, but it is not normal and its
  symmetric part exceeds ``α``: 1.03 for a 5-utterance dialogue with the whole past, 1.41 at
  60 utterances, 1.53 at 110 (``norm`` 1.66); a past window caps it (``wp = 4``: 1.04);
* other directed windows (``wp != wf``, e.g. CORECT's 11/5): the eigenvalues may be complex;
  only the numerical-range bound holds (0.95 for 11/5 at any length).

The batch graph is a disjoint union of one graph per dialogue, and each dialogue's graph depends
only on its length, the number of modalities and ``(wp, wf, α)`` (never on speakers or features),
so the exact per-dialogue values are computed once per length (a dense eigen-solve of at most
``M L`` nodes, cached) and a batch's bound is their maximum: :func:`batch_spectral_bounds`.
:meth:`SpectralBounds.of_matrix` gives cheap valid upper bounds for any sparse ``Â`` (Gershgorin
on the symmetric part, ``||Â||_2 <= sqrt(||Â||_1 ||Â||_∞)``), looser for directed graphs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from dgnode.graph.adjacency import normalized_adjacency
from dgnode.graph.edges import build_edges

__all__ = ["SpectralBounds", "batch_spectral_bounds", "dialogue_spectral_bounds"]


@dataclass(frozen=True)
class SpectralBounds:
    """Upper bounds ``symmetric_max >= λ_max(sym(Â))`` and ``norm >= ||Â||_2`` (see the module)."""

    symmetric_max: float
    norm: float

    @staticmethod
    def of_matrix(matrix: Tensor) -> "SpectralBounds":
        """Cheap bounds for any sparse or dense ``(V, V)`` matrix, from its absolute row sums ``r``
        and column sums ``c``: ``λ_max(sym) <= max_t (r_t + c_t) / 2`` (Gershgorin on the symmetric
        part) and ``||Â||_2 <= sqrt(max c * max r)``."""
        if matrix.layout == torch.strided:
            absolute = matrix.detach().abs().double()
            rows, columns = absolute.sum(1), absolute.sum(0)
        else:
            coo = (matrix.to_sparse_coo() if matrix.layout != torch.sparse_coo else matrix).coalesce()
            index, values = coo.indices(), coo.values().detach().abs().double()
            rows = values.new_zeros(matrix.shape[0]).index_add_(0, index[0], values)
            columns = values.new_zeros(matrix.shape[1]).index_add_(0, index[1], values)
        if rows.numel() == 0:
            return SpectralBounds(0.0, 0.0)
        return SpectralBounds(float(((rows + columns) / 2).max()), float((rows.max() * columns.max()).sqrt()))

    def merge(self, other: "SpectralBounds") -> "SpectralBounds":
        """Bounds of a disjoint union of the two graphs."""
        return SpectralBounds(max(self.symmetric_max, other.symmetric_max), max(self.norm, other.norm))


@lru_cache(maxsize=4096)
def dialogue_spectral_bounds(length: int, modalities: int, wp: int, wf: int, alpha: float) -> SpectralBounds:
    """Exact ``λ_max(sym(Â))`` and ``||Â||_2`` of one dialogue's graph (float64, rounded up by a
    relative ``1e-12`` so the float64 eigen-solve's rounding cannot make them fall short)."""
    graph = build_edges(torch.zeros(length, dtype=torch.long), torch.arange(length), torch.tensor([length]),
                        modalities, wp, wf)
    dense = normalized_adjacency(graph, alpha, dtype=torch.float64, layout=torch.sparse_coo).to_dense()
    symmetric_max = float(torch.linalg.eigvalsh((dense + dense.t()) / 2).max())
    norm = float(torch.linalg.matrix_norm(dense, ord=2))
    pad = 1.0 + 1e-12
    return SpectralBounds(symmetric_max * pad, norm * pad)


def batch_spectral_bounds(lengths: Tensor, modalities: int, wp: int, wf: int, alpha: float) -> SpectralBounds:
    """Bounds of a batch's disjoint graph: the maximum over its dialogues' lengths."""
    bounds = SpectralBounds(0.0, 0.0)
    for length in sorted(set(int(n) for n in lengths.tolist())):
        if length > 0:
            bounds = bounds.merge(dialogue_spectral_bounds(length, modalities, wp, wf, float(alpha)))
    return bounds
