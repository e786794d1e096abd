"""The graph ODE's closed-form solution: ``model.ode.method: exact``.

The ODE ``dH/dt = (Â - I) H + H (W - I) + H_0``, ``H(0) = H_0``, is linear with constant
coefficients. With ``W = U diag(d) U^T`` (``U`` orthogonal, ``d_j`` in ``(0, 1)``:
:class:`~dgnode.models.ode_weight.ChannelMixing`), ``G = H U`` decouples into one shifted linear
system in ``Â`` per column, ``dg_j/dt = (Â - c_j I) g_j + g_j(0)`` with ``c_j = 2 - d_j`` in
``(1, 2)``, whose solution is a power series in ``Â``:

.. math::

    g_j(T) = e^{-c_j T} e^{T \\hat{A}} g_j(0) + \\int_0^T e^{-c_j s} e^{s \\hat{A}} ds \\, g_j(0)
           = \\sum_{k \\ge 0} \\beta_k(c_j) \\hat{A}^k g_j(0),

    \\beta_k(c) = e^{-cT} \\frac{T^k}{k!} + \\int_0^T e^{-cs} \\frac{s^k}{k!} ds
               = e^{-cT} \\Big( \\frac{T^k}{k!} + \\sum_{m > k} c^{m-k-1} \\frac{T^m}{m!} \\Big) > 0.

So ``H(T) = Σ_k Â^k (H_0 U) diag(β_k) U^T``. The coefficients are computed in float64 by the
stable backward recurrence ``I_{k-1} = c I_k + e^{-cT} T^k / k!`` of the integral term (all
terms positive; the forward recurrence subtracts nearly equal numbers) and are differentiable in
``d``, so gradients reach ``W``'s eigenvalues and, through ``U``, its basis.

Truncation, with its error bound. Keeping ``k <= K``: ``β_k(c)`` decreases in ``c``,
``||Â^k||_2 <= ρ^k`` for any ``ρ >= ||Â||_2`` and ``U`` is orthogonal, so

.. math::

    \\|H_K(T) - H(T)\\|_F \\le R_K \\, \\|H_0\\|_F, \\qquad
    R_K = \\sum_{k > K} \\beta_k(c_{min}) \\rho^k, \\quad c_{min} = 2 - \\max_j d_j,

and ``K`` is the smallest with ``R_K <= rtol`` (``model.ode.rtol`` is the relative error bound
here; ``atol``, ``step_size`` and ``adjoint`` do not apply). ``ρ`` is the exact per-dialogue
``||Â||_2`` of :func:`dgnode.graph.batch_spectral_bounds` (0.9 for undirected graphs with
``α = 0.9``, up to 1.66 for IEMOCAP's longest dialogue in causal mode), so ``K`` grows with
``ρ T``: ``T = 1, ρ = 0.9`` needs 5 products for ``rtol = 1e-3`` and 8 for ``1e-6``; ``ρ = 1.66``
7 and 11 (at the worst case ``c_min = 1``).

Cost: ``K`` products ``Â P`` of width ``d`` (``O(V d)`` each for whole-dialogue windows:
:func:`dgnode.graph.structured_operator`) and two dense products with ``U``; the NFE
reported for this method (:attr:`GraphODE.last_nfe <dgnode.models.graph_ode.GraphODE>`) is
``K``, the number of products with ``Â`` (a Runge-Kutta evaluation costs one such product and
one ``(V, d) x (d, d)`` product). Backpropagation goes through the polynomial: no second solve.

Causality: in causal mode ``Â`` only sends the past to the future, and so does every polynomial
in it: utterance ``i``'s output depends on utterances ``0..i`` only, bit for bit (``K`` depends
on the batch's dialogue lengths and on ``W``, never on features). A prefix of a dialogue, with a
smaller ``ρ``, may get a smaller ``K``: its outputs then agree with the full dialogue's within
the bound above, not bit for bit.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["exact_coefficients", "exact_solve", "truncation_terms"]

_MAX_TERMS = 500


def exact_coefficients(shift: Tensor, T: float, terms: int) -> Tensor:
    """``β_k(c)`` for ``k = 0..terms`` and every ``c`` in ``shift``: ``(terms + 1, d)`` float64.

    ``shift`` holds ``c_j = 2 - d_j > 0``. The backward recurrence starts far enough above
    ``terms`` that its zero start contributes less than ``2^-40`` of a float64 ulp."""
    c = shift.double()
    decay = torch.exp(-c * T)
    top = terms + 40 + int(math.ceil(8 * T))
    log_t = math.log(T)
    integral = torch.zeros_like(c)
    coefficients = [None] * (terms + 1)
    for k in range(top, 0, -1):
        power = decay * math.exp(k * log_t - math.lgamma(k + 1))  # e^{-cT} T^k / k!
        if k <= terms:
            coefficients[k] = power + integral
        integral = c * integral + power  # I_{k-1}
    coefficients[0] = decay + integral
    return torch.stack(coefficients)


def truncation_terms(norm: float, T: float, shift_min: float, tolerance: float) -> tuple[int, float]:
    """The smallest ``K`` with ``R_K = Σ_{k>K} β_k(c_min) ρ^k <= tolerance`` and that ``R_K``
    (``ρ = norm``, ``c_min = shift_min``); see the module docstring."""
    x = float(norm) * T
    if x == 0.0:
        return 0, 0.0
    count = int(2 * x) + 30
    while count <= _MAX_TERMS:
        beta = _coefficients_scalar(float(shift_min), T, count)
        # Beyond `count` (> 2x), β_k ρ^k <= (1 + T) x^k / k! and consecutive terms shrink by more
        # than half: the rest of the series is at most twice its first term.
        tail = 2 * (1 + T) * math.exp((count + 1) * math.log(x) - math.lgamma(count + 2))
        tails = [0.0] * (count + 1)
        for k in range(count, -1, -1):
            tails[k] = tail  # R_k
            tail += beta[k] * norm**k
        for k, remainder in enumerate(tails):
            if remainder <= tolerance:
                return k, remainder
        count *= 2
    raise ValueError(f"the exact solver needs more than {_MAX_TERMS} terms for ||Â|| T = {x:.3g}: shorten ode.T")


def _coefficients_scalar(c: float, T: float, terms: int) -> list[float]:
    """:func:`exact_coefficients` for one ``c`` in plain floats (no autograd, no tensors)."""
    decay = math.exp(-c * T)
    log_t = math.log(T)
    integral, beta = 0.0, [0.0] * (terms + 1)
    for k in range(terms + 40 + int(math.ceil(8 * T)), 0, -1):
        power = decay * math.exp(k * log_t - math.lgamma(k + 1))
        if k <= terms:
            beta[k] = power + integral
        integral = c * integral + power
    beta[0] = decay + integral
    return beta


def exact_solve(x: Tensor, adjacency, basis: Tensor, spectrum: Tensor, T: float, terms: int) -> Tensor:
    """``H(T)`` from ``H(0) = H_0 = x`` (``(V, d)``) for ``W = basis diag(spectrum) basis^T``, the
    series kept to ``k <= terms`` (:func:`truncation_terms` picks ``terms`` from the error bound)."""
    beta = exact_coefficients(2.0 - spectrum, T, terms).to(x.dtype)
    power = x @ basis
    total = power * beta[0]
    for k in range(1, terms + 1):
        power = adjacency @ power
        # In place: autograd keeps `power` and `beta[k]`, never `total`, and a fresh (V, d)
        # buffer per term costs as much as the multiply-add itself on CPU (page faults).
        total.addcmul_(power, beta[k])
    return total @ basis.t()
