"""What the operator tests share: ``Â @ H`` and its gradient checked against the dense matrix."""

from __future__ import annotations

import torch


def assert_product_and_gradient_match_dense(operator, dense: torch.Tensor, width: int) -> None:
    """``operator @ (operator @ H)`` and its gradient in ``H`` equal the dense product's (two
    products, so the backward goes through the operator's own transpose twice)."""
    h = torch.randn(dense.shape[0], width, generator=torch.Generator().manual_seed(0), requires_grad=True)
    weights = torch.randn(dense.shape[0], width, generator=torch.Generator().manual_seed(1))
    ((operator @ (operator @ h)) * weights).sum().backward()
    operator_grad = h.grad.clone()
    h.grad = None
    ((dense @ (dense @ h)) * weights).sum().backward()
    torch.testing.assert_close(operator_grad, h.grad, rtol=1e-6, atol=1e-6)
