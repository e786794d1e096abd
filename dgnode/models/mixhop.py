"""Adaptive MixHop aggregation (DGODE section 4, after Abu-El-Haija et al., 2019).

.. math::

    H_{n+1} = \\sum_{k=1}^{K} w_k \\, \\hat{A}^k H_n W + H_0,
    \\qquad w = \\operatorname{softmax}(a), \\; a \\in \\mathbb{R}^K \\text{ learnable}

``Â`` is the normalised adjacency of :func:`dgnode.graph.normalized_adjacency`; the softmax
weights let the model choose how far information travels (hop 1 = neighbours, hop K = K-step
walks), and the ``H_0`` term (the encoder output) is a restart that keeps deep stacks from
over-smoothing. Because the map is linear in ``H_n``, ``Â^k (H_n W)`` is computed instead of
``(Â^k H_n) W``: one dense product, then ``K`` products with ``Â`` of width ``out_channels``.

Shapes: ``x (V, in_channels)``, ``adjacency (V, V)`` (sparse, or any operator with ``@``:
:func:`dgnode.graph.structured_operator`), ``x0 (V, out_channels)`` ->
``(V, out_channels)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class AdaptiveMixHop(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, hops: int) -> None:
        super().__init__()
        if hops < 1:
            raise ValueError(f"hops must be >= 1, got {hops}")
        self.hops = hops
        self.linear = nn.Linear(in_channels, out_channels, bias=False)
        # Equal weights at start: no hop is preferred before training.
        self.hop_logits = nn.Parameter(torch.zeros(hops))

    def hop_weights(self) -> Tensor:
        """``(K,)`` softmax weights ``w_1..w_K`` (they sum to 1)."""
        return torch.softmax(self.hop_logits, dim=0)

    def forward(self, x: Tensor, adjacency: Tensor, x0: Tensor) -> Tensor:
        weights = self.hop_weights()
        propagated = self.linear(x)
        propagated = adjacency @ propagated
        out = torch.addcmul(x0, propagated, weights[0])
        for k in range(1, self.hops):
            propagated = adjacency @ propagated
            out.addcmul_(propagated, weights[k])  # in place: autograd never keeps `out`
        return out

    def extra_repr(self) -> str:
        return f"hops={self.hops}"
