"""The graph ODE evolution layer of DGODE (continuous MixHop; CGNN, Xhonneux et al. 2020).

.. math::

    \\frac{dH}{dt} = (\\hat{A} - I) H + H (W - I) + H_0, \\qquad H(0) = H_0,

solved from ``t = 0`` to ``T`` with torchdiffeq; ``H(T)`` is the layer output. The three terms:
diffusion over the graph (``Â`` from :func:`dgnode.graph.normalized_adjacency`), a learned
channel mixing ``W``, and a restart towards the initial state that keeps the representation
from collapsing to the graph's stationary point (over-smoothing). The equation is linear, so
for a fixed ``Â`` and ``W`` its solution is the matrix exponential of the Kronecker operator
``I ⊗ (Â - I) + (W - I)^T ⊗ I`` acting on ``vec(H)`` (the test suite checks exactly that).

``W = U diag(d) U^T`` with ``U`` orthogonal and ``d`` in ``(0, 1)`` by construction
(:class:`~dgnode.models.ode_weight.ChannelMixing`, ``weight="symmetric"``); ``weight="free"``
learns ``W`` directly.

Stability, exactly. With column-major ``vec``, ``d vec(H)/dt = K vec(H) + vec(H_0)``,
``K = I ⊗ (Â - I) + (W - I)^T ⊗ I``. The symmetric part of ``K`` is the Kronecker sum of those
of ``Â - I`` and ``W - I``, so the *logarithmic norm*

.. math::

    \omega = \lambda_{max}(\mathrm{sym}(K)) = \lambda_{max}(\mathrm{sym}(\hat{A}))
              + \lambda_{max}(\mathrm{sym}(W)) - 2

bounds every eigenvalue's real part and the growth of the homogeneous part,
``||exp(t K)||_2 <= exp(t ω)``. :meth:`GraphODE.diagnostics` reports ``ω`` (``growth_bound``;
the graph term is the largest over the graphs solved since the previous call, from
:mod:`dgnode.graph.spectrum`). What that guarantees:

* undirected graphs (``wp == wf``): ``λ_max(sym(Â)) = α``, so ``ω <= α + λ_max(W) - 2 < α - 1
  <= 0``: the homogeneous part contracts in norm at every moment;
* causal graphs (``wf = 0``): the eigenvalues of ``Â`` are real and in ``[0, α]``, so every
  mode of ``K`` decays (real parts ``<= α - 1 < 0``), but ``Â`` is not normal and ``ω`` can be
  positive (``λ_max(sym(Â))`` up to 1.53 on IEMOCAP's longest dialogue with the whole past):
  the norm may grow transiently by at most ``exp(T ω)``;
* other directed windows (``wp != wf``): only ``ω`` (about ``0.95 + λ_max(W) - 2 < 0`` for the
  11/5 windows) holds.

``method: exact`` evaluates the closed-form solution instead (a truncated power series in
``Â`` in ``W``'s eigenbasis, the truncation chosen from a stated error bound and ``rtol``:
:mod:`dgnode.models.ode_exact`); its NFE is the number of products with ``Â``.

The solvers work in ``W``'s eigenbasis: ``G = H U`` obeys the same equation with ``W`` replaced by
``diag(d)`` (``U`` is orthogonal), so a function evaluation is one product with ``Â`` and an
elementwise scaling, and ``U`` enters twice per solve instead of once per evaluation. ``Â`` is
whatever supports ``Â @ G``: DGODE passes :func:`dgnode.graph.structured_operator`'s (``O(V d)``
segment sums for whole-dialogue windows, a CSR product otherwise). Fixed-step
solvers give the same ``H(T)`` up to float rounding; adaptive ones measure their error in the
rotated coordinates, so their steps (and results, within the tolerance) may differ slightly
from a solve in the original ones.

Solver settings follow torchdiffeq: ``method`` (``dopri5``, ``rk4``, ``euler``...), ``rtol``,
``atol``, ``options`` (a plain dict passed through, e.g. ``{"step_size": 0.1}``) and
``adjoint`` (``odeint_adjoint``: memory constant in the number of steps, at the price of a
second solve backwards). ``dopri5`` without the adjoint runs torchdiffeq's solver with its
stages kept apart (:mod:`dgnode.models.ode_dopri5`: the same method without torchdiffeq's
stage-tensor bookkeeping, which was about a third of a DGODE training step). Function evaluations (NFE) are counted per forward pass and capped by
:attr:`GraphODE.nfe_cap`: exceeding it raises :class:`NFECapExceeded` instead of letting a
stiff trial run for hours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from dgnode.errors import DgnodeError
from dgnode.graph.adjacency import SparseOperator
from dgnode.graph.whole_dialogue import WholeDialogueOperator
from dgnode.graph.spectrum import SpectralBounds
from dgnode.models.ode_dopri5 import STAGEWISE_UNSUPPORTED_OPTIONS, odeint_dopri5
from dgnode.models.ode_exact import exact_solve, truncation_terms
from dgnode.models.ode_weight import WEIGHT_FORMS, ChannelMixing

ADAPTIVE_METHODS = ("dopri8", "dopri5", "bosh3", "fehlberg2", "adaptive_heun")
FIXED_STEP_METHODS = ("euler", "midpoint", "heun2", "heun3", "rk4", "explicit_adams", "implicit_adams", "fixed_adams")
METHODS = ADAPTIVE_METHODS + FIXED_STEP_METHODS  # torchdiffeq's solvers
EXACT = "exact"  # the closed form of dgnode.models.ode_exact
Operator = SparseOperator | WholeDialogueOperator | Tensor  # Â: anything with `Â @ H`


class NFECapExceeded(DgnodeError):
    """The ODE solver needed more function evaluations than the configured cap."""


class ODESolverError(DgnodeError):
    """torchdiffeq gave up (e.g. step size underflow): the dynamics are too stiff for the settings."""


@dataclass
class ODEConfig:
    """How the graph ODE is solved (torchdiffeq's vocabulary).

    Attributes:
        method: a torchdiffeq solver name (:data:`METHODS`) or ``exact``, the closed-form
            solution (:mod:`dgnode.models.ode_exact`).
        rtol, atol: tolerances of adaptive solvers (ignored by fixed-step ones); for ``exact``,
            ``rtol`` bounds the relative (Frobenius) truncation error and ``atol`` is unused.
        T: integration end time; ``H(T)`` is the output.
        step_size: step of fixed-step solvers (``None``: one step over ``[0, T]``); also
            accepted in ``options``.
        adjoint: backpropagate with ``odeint_adjoint`` (no effect with ``exact``).
        weight: ``"symmetric"`` (``U diag(d) U^T``, ``U`` orthogonal, ``d`` in ``(0, 1)``) or ``"free"``.
        options: extra solver options passed through to torchdiffeq unchanged.
    """

    method: str = "dopri5"
    rtol: float = 1e-3
    atol: float = 1e-4
    T: float = 1.0
    step_size: float | None = None
    adjoint: bool = False
    weight: Literal["symmetric", "free"] = "symmetric"
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in (*METHODS, EXACT):
            raise ValueError(f"ode.method must be one of {', '.join((*METHODS, EXACT))}; got {self.method!r}")
        if self.rtol <= 0 or self.atol <= 0:
            raise ValueError(f"ode.rtol and ode.atol must be positive, got {self.rtol}, {self.atol}")
        if self.T <= 0:
            raise ValueError(f"ode.T must be positive, got {self.T}")
        if self.step_size is not None and self.step_size <= 0:
            raise ValueError(f"ode.step_size must be positive, got {self.step_size}")
        if self.weight not in WEIGHT_FORMS:
            raise ValueError(f"ode.weight must be one of {', '.join(WEIGHT_FORMS)}; got {self.weight!r}")
        if self.method == EXACT and self.weight != "symmetric":
            raise ValueError("ode.method exact needs W's orthogonal eigenbasis: use ode.weight symmetric")

    def solver_options(self, nfe_cap: int | None = None) -> dict[str, Any]:
        """The ``options`` dict for torchdiffeq: ``step_size`` for fixed-step methods and, for
        adaptive ones, ``max_num_steps`` (a step costs at least one evaluation, so a cap on
        evaluations is also a cap on steps; the evaluation counter stays the authority)."""
        options = dict(self.options)
        if self.method in FIXED_STEP_METHODS and self.step_size is not None:
            options.setdefault("step_size", self.step_size)
        if self.method in ADAPTIVE_METHODS and nfe_cap is not None:
            options.setdefault("max_num_steps", nfe_cap)
        return options


class GraphODEFunc(nn.Module):
    """``f(t, G) = Â G + G S + G_0``; counts its evaluations.

    :class:`GraphODE` sets the shift ``S`` (:attr:`shift`) once per solve: for the symmetric
    ``W = U diag(d) U^T`` the state is ``G = H U`` (``W``'s eigenbasis) and ``S = diag(d) - 2I``
    is held as the vector ``d - 2``, so an evaluation is one product with ``Â`` and an elementwise
    one; for the free ``W`` the state is ``H`` and ``S = W - 2I``, a dense product. The state is
    either ``G`` (with ``G_0`` in :attr:`restart`) or, for the adjoint method, the tuple
    ``(G, G_0)`` with ``dG_0/dt = 0``: the adjoint then treats ``G_0`` as part of the initial
    state and returns its gradient, which a captured tensor would silently lose.
    """

    def __init__(self) -> None:
        super().__init__()
        self.adjacency: Tensor | None = None
        self.shift: Tensor | None = None
        self.restart: Tensor | None = None
        self.nfe = 0
        self.nfe_cap: int | None = None

    def forward(self, t: Tensor, state: Tensor | tuple[Tensor, Tensor]) -> Tensor | tuple[Tensor, Tensor]:
        self.nfe += 1
        if self.nfe_cap is not None and self.nfe > self.nfe_cap:
            raise NFECapExceeded(
                f"graph ODE needed more than {self.nfe_cap} function evaluations (train.nfe_cap); "
                "loosen rtol/atol, shorten ode.T, use a fixed-step method, or raise the cap"
            )
        if self.adjacency is None or self.shift is None:
            raise RuntimeError("GraphODEFunc.adjacency is not set; call it through GraphODE")
        if isinstance(state, tuple):
            h, h0 = state
        else:
            h, h0 = state, self.restart
        # Accumulated in place into Â h (autograd keeps h and S, never the sum): one (V, d) buffer
        # per evaluation.
        derivative = (self.adjacency @ h).add_(h0)
        if self.shift.ndim == 1:
            derivative.addcmul_(h, self.shift)
        else:
            derivative.addmm_(h, self.shift)
        if isinstance(state, tuple):
            return derivative, torch.zeros_like(h0)
        return derivative


class GraphODE(nn.Module):
    """Solve the graph ODE from ``H(0) = x`` to ``H(T)``: ``(V, d) -> (V, d)``.

    :attr:`last_nfe` holds the evaluations of the latest forward solve, :meth:`backward_nfe`
    those of the latest adjoint backward solve.
    """

    def __init__(self, channels: int, config: ODEConfig) -> None:
        super().__init__()
        self.config = config
        self.mixing = ChannelMixing(channels, config.weight)
        self.func = GraphODEFunc()
        self.nfe_cap: int | None = None
        self.last_nfe = 0
        self.last_truncation_bound = 0.0  # R_K of the latest exact solve (dgnode.models.ode_exact)
        self._graph_bounds: SpectralBounds | None = None

    def forward(self, x: Tensor, adjacency: Operator, bounds: SpectralBounds | None = None) -> Tensor:
        """``H(T)`` from ``H(0) = H_0 = x``. ``bounds``: spectral bounds of ``adjacency`` (from
        :func:`dgnode.graph.batch_spectral_bounds`; default: cheap bounds from its entries).
        Runs in at least float32 even under autocast: adaptive step control and the exact
        solver's series need more than bf16's 8 mantissa bits."""
        with torch.autocast(x.device.type, enabled=False):
            return self._solve(x.float() if x.dtype in (torch.float16, torch.bfloat16) else x, adjacency, bounds)

    def _solve(self, x: Tensor, adjacency: Operator, bounds: SpectralBounds | None) -> Tensor:
        import torchdiffeq

        if bounds is None:
            matrix = adjacency.matrix if isinstance(adjacency, SparseOperator) else \
                adjacency.to_dense() if isinstance(adjacency, WholeDialogueOperator) else adjacency
            bounds = SpectralBounds.of_matrix(matrix)
        self._graph_bounds = bounds if self._graph_bounds is None else self._graph_bounds.merge(bounds)
        config = self.config
        if config.method == EXACT:
            return self._solve_exactly(x, adjacency, bounds)
        func = self.func
        if self.mixing.form == "symmetric":
            # In W's eigenbasis H W = G diag(d) U^T: no dense product per evaluation, two per solve.
            basis, spectrum = self.mixing.eigh()
            start, func.shift = x @ basis, spectrum - 2.0
        else:
            weight = self.mixing()
            basis, start = None, x
            func.shift = weight - 2.0 * torch.eye(weight.shape[0], dtype=weight.dtype, device=weight.device)
        func.adjacency = adjacency
        func.nfe = 0
        func.nfe_cap = self.nfe_cap
        times = torch.tensor([0.0, config.T], dtype=x.dtype, device=x.device)
        options = config.solver_options(self.nfe_cap)
        try:
            if config.adjoint:
                # The shift is a non-leaf tensor: the adjoint returns its gradient, and autograd
                # carries it on to the parameters of W.
                params = (func.shift,) if func.shift.requires_grad else ()
                solution = torchdiffeq.odeint_adjoint(
                    func, (start, start), times, rtol=config.rtol, atol=config.atol, method=config.method,
                    options=options, adjoint_params=params,
                )
                out = solution[0][-1]
            else:
                func.restart = start
                if config.method == "dopri5" and not any(k in options for k in STAGEWISE_UNSUPPORTED_OPTIONS):
                    out = odeint_dopri5(func, start, times, config.rtol, config.atol, options)[-1]
                else:
                    out = torchdiffeq.odeint(
                        func, start, times, rtol=config.rtol, atol=config.atol, method=config.method, options=options
                    )[-1]
        except AssertionError as error:
            raise self._solver_error(error) from None
        finally:
            func.restart = None
            if not config.adjoint:
                func.shift = None
        self.last_nfe = func.nfe
        if config.adjoint and out.requires_grad:
            out.register_hook(self._start_backward_count)
        return out @ basis.t() if basis is not None else out

    def _solve_exactly(self, x: Tensor, adjacency: Operator, bounds: SpectralBounds) -> Tensor:
        basis, spectrum = self.mixing.eigh()
        shift_min = 2.0 - float(spectrum.detach().max())
        terms, self.last_truncation_bound = truncation_terms(bounds.norm, self.config.T, shift_min, self.config.rtol)
        if self.nfe_cap is not None and terms > self.nfe_cap:
            raise NFECapExceeded(f"the exact graph ODE solve needs {terms} products with Â, more than "
                                 f"train.nfe_cap {self.nfe_cap}; shorten ode.T or loosen ode.rtol")
        self.last_nfe = terms
        return exact_solve(x, adjacency, basis, spectrum, self.config.T, terms)

    def diagnostics(self) -> dict[str, float]:
        """Stability of the dynamics (module docstring): ``growth_bound`` ``ω``, its terms
        ``adjacency_symmetric_max`` (largest over the graphs solved since the previous call,
        which resets it) and ``weight_eig_max``/``weight_eig_min``, and for the symmetric form
        ``orthogonality_error`` ``||U^T U - I||_F / sqrt(d)``."""
        low, high = self.mixing.eigenvalue_range()
        result = {"weight_eig_min": low, "weight_eig_max": high}
        if self.mixing.form == "symmetric":
            result["orthogonality_error"] = self.mixing.orthogonality_error()
        if self._graph_bounds is not None:
            result["adjacency_symmetric_max"] = self._graph_bounds.symmetric_max
            result["growth_bound"] = self._graph_bounds.symmetric_max + high - 2.0
        self._graph_bounds = None
        return result

    def _start_backward_count(self, grad: Tensor) -> Tensor:
        # Runs when the gradient of H(T) is ready, just before the adjoint solve starts: the cap
        # then applies to the backward solve on its own.
        self.func.nfe = 0
        return grad

    def _solver_error(self, error: AssertionError) -> DgnodeError:
        message = str(error)
        config = self.config
        where = f"method={config.method}, rtol={config.rtol}, atol={config.atol}, T={config.T}"
        if "max_num_steps" in message:
            return NFECapExceeded(f"graph ODE exceeded the step cap ({message}; {where}); loosen the tolerances or raise train.nfe_cap")
        return ODESolverError(f"graph ODE solver failed: {message} ({where})")

    def backward_nfe(self) -> int:
        """Evaluations of the latest adjoint backward solve (0 without the adjoint)."""
        return self.func.nfe if self.config.adjoint else 0
