"""The stage-list dopri5 against torchdiffeq's own: the same solution, gradients, evaluations and
errors; the options it leaves to torchdiffeq."""

from __future__ import annotations

import pytest
import torch
import torchdiffeq
from torchdiffeq._impl.dopri5 import Dopri5Solver

from dgnode.models.ode_dopri5 import odeint_dopri5


class Linear(torch.nn.Module):
    """``f(t, y) = A y + sin(t) b``: a stiff-ish linear ODE with a time-dependent forcing."""

    def __init__(self, size: int, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.a = torch.nn.Parameter(torch.randn(size, size, generator=generator) / size**0.5 - 2 * torch.eye(size))
        self.b = torch.nn.Parameter(torch.randn(size, 1, generator=generator))
        self.nfe = 0

    def forward(self, t, y):
        self.nfe += 1
        return self.a @ y + torch.sin(t) * self.b


def solve(solver, tolerances, seed: int = 0):
    func = Linear(12, seed)
    y0 = torch.randn(12, 5, generator=torch.Generator().manual_seed(seed + 1), requires_grad=True)
    times = torch.tensor([0.0, 0.5, 2.0])
    out = solver(func, y0, times, *tolerances)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed + 2))
    (out * weights).sum().backward()
    return out.detach(), y0.grad, func.a.grad, func.nfe


def reference(func, y0, times, rtol, atol, options=None):
    return torchdiffeq.odeint(func, y0, times, rtol=rtol, atol=atol, method="dopri5", options=options)


@pytest.mark.parametrize("tolerances", [(1e-3, 1e-4), (1e-6, 1e-8)], ids=["loose", "tight"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_as_accurate_as_torchdiffeq_with_as_many_evaluations(tolerances, seed):
    # The error estimate is a small difference of large stage sums, so float32 rounding moves the
    # error ratios by ~1e-3 (relative) in both implementations and a ratio near 1 may be accepted
    # by one and rejected by the other: compare accuracy and cost, not the step sequence.
    ours, theirs = solve(odeint_dopri5, tolerances, seed), solve(reference, tolerances, seed)
    exact = solve(reference, (1e-10, 1e-12), seed)
    for mine, expected, truth in zip(ours[:3], theirs[:3], exact[:3]):
        scale = float(truth.abs().max())
        assert float((mine - truth).abs().max()) <= 2 * float((expected - truth).abs().max()) + 1e-5 * scale
        assert float((mine - truth).abs().max()) <= 50 * tolerances[0] * scale
    assert abs(ours[3] - theirs[3]) <= 0.1 * theirs[3]


def test_same_result_as_torchdiffeq_when_the_steps_agree():
    # One step over a short interval: the same stages, the same sums up to float rounding.
    ours = solve(lambda *a: odeint_dopri5(*a[:2], torch.tensor([0.0, 1e-3]), *a[3:]), (1e-3, 1e-4))
    theirs = solve(lambda *a: reference(*a[:2], torch.tensor([0.0, 1e-3]), *a[3:]), (1e-3, 1e-4))
    for mine, expected in zip(ours[:3], theirs[:3]):
        torch.testing.assert_close(mine, expected, rtol=1e-6, atol=1e-7)
    assert ours[3] == theirs[3]


def test_options_pass_through_to_the_solver():
    capped = lambda *args: odeint_dopri5(*args, options={"max_num_steps": 2})  # noqa: E731
    with pytest.raises(AssertionError, match="max_num_steps"):
        solve(capped, (1e-9, 1e-11))


def test_refuses_grid_options_it_does_not_implement():
    with pytest.raises(ValueError, match="step_t"):
        odeint_dopri5(Linear(2, 0), torch.ones(2, 1), torch.tensor([0.0, 1.0]), 1e-3, 1e-4, {"step_t": [0.5]})


def test_dormand_prince_is_first_same_as_last():
    # The solver's y1 is its last stage's argument: true only while c_sol equals the last beta row.
    tableau = Dopri5Solver.tableau
    assert tableau.c_sol[-1] == 0 and torch.equal(tableau.c_sol[:-1], tableau.beta[-1])
