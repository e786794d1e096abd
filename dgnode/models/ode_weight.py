"""The channel-mixing matrix ``W`` of the graph ODE, parametrised so the theory keeps holding.

``form="symmetric"`` (the default, CGNN's form): ``W = U diag(d) U^T`` with

* ``U = (I - S)^{-1} (I + S)``, the Cayley transform of the skew-symmetric ``S = P - P^T``
  (``P`` learnable, initially 0, so ``U = I``): ``U`` is orthogonal for every ``P``, so the
  eigenvalues of ``W`` are exactly ``d`` (CGNN's own trainer instead re-orthogonalises ``U``
  after each optimiser step; a plain ``U`` drifts: ``||U^T U - I||_F / sqrt(d)`` reached 0.39
  and ``λ_max(W)`` 2.77 within 3 epochs of ``configs/dgode_fast.yaml``). ``I - S`` has
  eigenvalues ``1 - iθ``, so the solve is always well conditioned.
* ``d = sigmoid(s)`` in ``(0, 1)`` with a gradient everywhere (a clamp to ``[0, 1]`` passes no
  gradient once a ``d_j`` leaves the interval: 66% of them did in the run above). The ``d_j``
  start evenly spread over ``[0.5, 0.95]`` (``W = diag(d)``): distinct, because with equal
  eigenvalues ``W`` does not depend on ``U`` at all, the exact gradient for ``P`` is zero and
  Adam would turn its rounding noise into steps of size ``lr`` (measured: two data-parallel
  workers drifted 3e-4 apart in loss within 3 epochs); near CGNN's ``W = I`` start at the top,
  a spread of decay rates towards ``H_0`` below it, all away from the sigmoid's flat tails.

So ``λ(W) ⊂ (0, 1)`` always, and the graph ODE's growth rate is bounded by
``λ_max(sym(Â)) + λ_max(W) - 2 < λ_max(sym(Â)) - 1`` (:mod:`dgnode.models.graph_ode`). The
orthogonal eigenbasis is also what the exact solver needs (:mod:`dgnode.models.ode_exact`).

``form="free"``: ``W`` is learned directly (initially ``I``), with no guarantee; kept for
ablations. Its bound uses ``λ_max((W + W^T)/2)``.

Shapes: :meth:`ChannelMixing.forward` returns ``(d, d)``; :meth:`ChannelMixing.eigh` returns
``U (d, d)`` and ``d (d,)``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

__all__ = ["ChannelMixing", "WEIGHT_FORMS"]

WEIGHT_FORMS = ("symmetric", "free")
_INITIAL_EIGENVALUES = (0.5, 0.95)  # the range the initial d_j are spread over


class ChannelMixing(nn.Module):
    """``W`` of the graph ODE; see the module docstring."""

    def __init__(self, channels: int, form: Literal["symmetric", "free"] = "symmetric") -> None:
        super().__init__()
        if form not in WEIGHT_FORMS:
            raise ValueError(f"weight must be 'symmetric' or 'free', got {form!r}")
        self.form = form
        self.channels = channels
        if form == "symmetric":
            self.skew = nn.Parameter(torch.zeros(channels, channels))
            low, high = (math.log(p / (1.0 - p)) for p in _INITIAL_EIGENVALUES)
            self.spectrum_logit = nn.Parameter(torch.linspace(high, low, channels) if channels > 1
                                               else torch.full((1,), high))
        else:
            self.basis = nn.Parameter(torch.eye(channels))

    def eigh(self) -> tuple[Tensor, Tensor]:
        """``(U, d)`` with ``W = U diag(d) U^T``, ``U`` orthogonal, ``d`` in ``(0, 1)``
        (symmetric form only)."""
        if self.form != "symmetric":
            raise ValueError("only weight='symmetric' has an orthogonal eigenbasis")
        skew = self.skew - self.skew.t()
        eye = torch.eye(self.channels, dtype=skew.dtype, device=skew.device)
        return torch.linalg.solve(eye - skew, eye + skew), torch.sigmoid(self.spectrum_logit)

    def forward(self) -> Tensor:
        """The ``(d, d)`` matrix ``W``: build it once per solve, not once per evaluation."""
        if self.form == "free":
            return self.basis
        basis, spectrum = self.eigh()
        return (basis * spectrum) @ basis.t()

    @torch.no_grad()
    def eigenvalue_range(self) -> tuple[float, float]:
        """``(min, max)`` eigenvalue of ``W`` (of ``(W + W^T)/2`` for the free form, whose
        maximum is what bounds the dynamics)."""
        if self.form == "symmetric":
            spectrum = torch.sigmoid(self.spectrum_logit)
        else:
            spectrum = torch.linalg.eigvalsh(((self.basis + self.basis.t()) / 2).double())
        return float(spectrum.min()), float(spectrum.max())

    @torch.no_grad()
    def orthogonality_error(self) -> float:
        """``||U^T U - I||_F / sqrt(d)`` (symmetric form; float rounding only)."""
        if self.form != "symmetric":
            return float("nan")
        basis, _ = self.eigh()
        eye = torch.eye(self.channels, dtype=basis.dtype, device=basis.device)
        return float(torch.linalg.matrix_norm(basis.t() @ basis - eye) / math.sqrt(self.channels))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, form={self.form}"
