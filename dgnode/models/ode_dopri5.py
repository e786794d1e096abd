"""torchdiffeq's dopri5 with its stages kept as separate tensors: what ``model.ode.method: dopri5``
runs when backpropagating through the solver (no adjoint).

torchdiffeq 0.2.5 (``_runge_kutta_step``) writes the 7 stages ``k_j`` of a Dormand-Prince step
into one ``(..., 7)`` tensor and forms every combination ``y_0 + dt Σ_j β_ij k_j`` as a product
and a sum over that last, strided dimension; autograd then materialises a zero-filled gradient of
the whole ``(V, d, 7)`` tensor for every stage written. Profiled on one DGODE training batch
at the paper's dims (``V`` = 2200 nodes, width 512, one CPU thread), that bookkeeping (``fill_``,
strided ``mul``/``sum``) took about a third of the step. :class:`_StagewiseDopri5` is the same
solver (torchdiffeq's :class:`~torchdiffeq._impl.dopri5.Dopri5Solver`, its tableau, error norm,
step-size control, initial step, dense-output interpolation, callbacks and assertions) with the
combinations written as ``addcmul`` chains over the stage list: the same products and sums in
float32, in another order, so states agree to float rounding and the accepted steps are the
same unless an error ratio sits within rounding of 1. The adjoint and every other method still
use torchdiffeq's own solvers, and so does dopri5 with ``step_t``/``jump_t`` options (grid points
this subclass does not handle).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor
from torchdiffeq._impl.dopri5 import Dopri5Solver
from torchdiffeq._impl.interp import _interp_fit
from torchdiffeq._impl.misc import Perturb, _check_inputs, _compute_error_ratio, _optimal_step_size
from torchdiffeq._impl.rk_common import _RungeKuttaState

__all__ = ["STAGEWISE_UNSUPPORTED_OPTIONS", "odeint_dopri5"]

STAGEWISE_UNSUPPORTED_OPTIONS = ("step_t", "jump_t")  # options that need torchdiffeq's own dopri5


def odeint_dopri5(func: Callable[[Tensor, Tensor], Tensor], y0: Tensor, t: Tensor, rtol: float, atol: float,
                  options: dict[str, Any] | None = None) -> Tensor:
    """``torchdiffeq.odeint(func, y0, t, rtol, atol, method="dopri5", options=options)`` for a
    tensor state, computed by :class:`_StagewiseDopri5`: ``(len(t), *y0.shape)``."""
    options = dict(options or {})
    unsupported = [key for key in STAGEWISE_UNSUPPORTED_OPTIONS if key in options]
    if unsupported or not isinstance(y0, Tensor):
        raise ValueError(f"odeint_dopri5 takes a tensor state and no {', '.join(unsupported)} option")
    _, func, y0, t, rtol, atol, _, options, _, _ = _check_inputs(
        func, y0, t, rtol, atol, "dopri5", options, None, {"dopri5": _StagewiseDopri5})
    return _StagewiseDopri5(func=func, y0=y0, rtol=rtol, atol=atol, **options).integrate(t)


def _combine(stages: list[Tensor], coefficients: Tensor) -> Tensor:
    """``Σ_j coefficients[j] stages[j]``: one fused multiply-add per stage, in place (autograd
    keeps the stages and coefficients, never the running sum, and a fresh buffer per term costs
    as much as the multiply-add on CPU)."""
    total = stages[0] * coefficients[0]
    for stage, coefficient in zip(stages[1:], coefficients[1:]):
        total.addcmul_(stage, coefficient)
    return total


class _StagewiseDopri5(Dopri5Solver):
    """:class:`~torchdiffeq._impl.dopri5.Dopri5Solver` with the stages in a list (module docstring).
    :meth:`_adaptive_step` is torchdiffeq's ``RKAdaptiveStepsizeODESolver._adaptive_step`` less
    its ``step_t``/``jump_t`` branches (refused by :func:`odeint_dopri5`)."""

    def _adaptive_step(self, rk_state: _RungeKuttaState) -> _RungeKuttaState:
        y0, f0, _, t0, dt, interp_coeff = rk_state
        if not torch.isfinite(dt):
            dt = self.min_step
        dt = dt.clamp(self.min_step, self.max_step)
        self.func.callback_step(t0, y0, dt)
        t1 = t0 + dt
        assert t0 + dt > t0, 'underflow in dt {}'.format(dt.item())
        assert torch.isfinite(y0).all(), 'non-finite values in state `y`: {}'.format(y0)
        y1, f1, y1_error, stages = self._step(y0, f0, t0, dt, t1)
        error_ratio = _compute_error_ratio(y1_error, self.rtol, self.atol, y0, y1, self.norm)
        accept_step = error_ratio <= 1
        if dt > self.max_step:
            accept_step = False
        if dt <= self.min_step:
            accept_step = True
        if accept_step:
            self.func.callback_accept_step(t0, y0, dt)
            t_next, y_next, f_next = t1, y1, f1
            interp_coeff = self._fit_interpolation(y0, y1, stages, dt)
        else:
            self.func.callback_reject_step(t0, y0, dt)
            t_next, y_next, f_next = t0, y0, f0
        dt_next = _optimal_step_size(dt, error_ratio, self.safety, self.ifactor, self.dfactor, self.order)
        dt_next = dt_next.clamp(self.min_step, self.max_step)
        return _RungeKuttaState(y_next, f_next, t0, t_next, dt_next, interp_coeff)

    def _step(self, y0: Tensor, f0: Tensor, t0: Tensor, dt: Tensor, t1: Tensor):
        """torchdiffeq's ``_runge_kutta_step``: ``(y1, f1, error estimate, stages)``. Dormand-Prince
        is first-same-as-last (the solution weights are the last stage's), so ``y1`` is the
        argument of the last evaluation."""
        tableau = self.tableau
        t_dtype = y0.abs().dtype
        t0, dt, t1 = t0.to(t_dtype), dt.to(t_dtype), t1.to(t_dtype)
        stages = [f0]
        y_stage = y0
        for alpha_i, beta_i in zip(tableau.alpha, tableau.beta):
            if alpha_i == 1.0:
                ti, perturb = t1, Perturb.PREV  # torchdiffeq: perturb to just before the end time
            else:
                ti, perturb = t0 + alpha_i * dt, Perturb.NONE
            y_stage = y0 + _combine(stages, beta_i * dt)
            stages.append(self.func(ti, y_stage, perturb=perturb))
        return y_stage, stages[-1], _combine(stages, dt * tableau.c_error), stages

    def _fit_interpolation(self, y0: Tensor, y1: Tensor, stages: list[Tensor], dt: Tensor) -> list[Tensor]:
        dt = dt.type_as(y0)
        y_mid = y0 + _combine(stages, dt * self.mid)
        return _interp_fit(y0, y1, y_mid, stages[0], stages[-1], dt)

