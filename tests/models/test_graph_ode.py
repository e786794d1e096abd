"""The graph ODE against its closed-form solution, the NFE cap, the adjoint."""

from __future__ import annotations

import pytest
import torch

from dgnode.errors import DgnodeError
from dgnode.graph import adjacency_operator, build_edges, normalized_adjacency
from dgnode.models.graph_ode import METHODS, GraphODE, NFECapExceeded, ODEConfig


def tiny_graph():
    lengths = torch.tensor([3, 2])
    return build_edges(torch.tensor([0, 0, 0, 1, 1]), torch.tensor([0, 1, 2, 0, 1]), lengths, 2, 1, 1)


def closed_form(adjacency: torch.Tensor, weight: torch.Tensor, h0: torch.Tensor, t: float) -> torch.Tensor:
    """H(t) of dH/dt = (Â - I) H + H (W - I) + H0, H(0) = H0, via one augmented matrix exponential.

    With column-major vec: vec(dH/dt) = K vec(H) + vec(H0), K = I ⊗ (Â - I) + (W - I)^T ⊗ I.
    z = [vec(H); 1] obeys dz/dt = [[K, vec(H0)], [0, 0]] z, so z(t) = expm(t M) z(0).
    """
    v, d = h0.shape
    eye_v, eye_d = torch.eye(v, dtype=h0.dtype), torch.eye(d, dtype=h0.dtype)
    k = torch.kron(eye_d, adjacency - eye_v) + torch.kron((weight - eye_d).t().contiguous(), eye_v)
    vec_h0 = h0.t().reshape(-1)
    m = torch.zeros(v * d + 1, v * d + 1, dtype=h0.dtype)
    m[: v * d, : v * d] = k
    m[: v * d, -1] = vec_h0
    z0 = torch.cat([vec_h0, torch.ones(1, dtype=h0.dtype)])
    z = torch.linalg.matrix_exp(t * m) @ z0
    return z[: v * d].reshape(d, v).t()


def test_method_list_matches_torchdiffeq():
    from torchdiffeq._impl.odeint import SOLVERS

    assert set(METHODS) == set(SOLVERS) - {"scipy_solver"}


@pytest.mark.parametrize(
    "config,tolerance",
    [
        (ODEConfig(method="dopri5", rtol=1e-9, atol=1e-11, T=1.3), 1e-8),
        (ODEConfig(method="rk4", step_size=0.01, T=1.3), 1e-9),
        (ODEConfig(method="euler", step_size=0.001, T=1.3), 5e-3),
    ],
    ids=["dopri5", "rk4", "euler"],
)
@pytest.mark.parametrize("weight_form", ["symmetric", "free"])
def test_solution_matches_matrix_exponential(config, tolerance, weight_form):
    torch.manual_seed(0)
    graph = tiny_graph()
    config.weight = weight_form
    ode = GraphODE(3, config).double()
    randomize_weight(ode)
    h0 = torch.randn(graph.num_nodes, 3, dtype=torch.float64)
    adjacency = normalized_adjacency(graph, 0.9, dtype=torch.float64)
    out = ode(h0, adjacency_operator(graph, 0.9, dtype=torch.float64))
    expected = closed_form(adjacency.to_dense(), ode.mixing().detach(), h0, 1.3)
    torch.testing.assert_close(out, expected, rtol=0, atol=tolerance)
    assert ode.last_nfe > 0


def randomize_weight(ode: GraphODE, scale: float = 0.3) -> None:
    """A non-trivial W: a random orthogonal basis and spread eigenvalues (or a random free W)."""
    mixing = ode.mixing
    with torch.no_grad():
        if mixing.form == "symmetric":
            mixing.skew.copy_(scale * torch.randn(mixing.channels, mixing.channels))
            mixing.spectrum_logit.copy_(torch.linspace(-3.0, 6.0, mixing.channels))
        else:
            mixing.basis.copy_(torch.eye(mixing.channels) + scale * torch.randn(mixing.channels, mixing.channels))


def test_symmetric_weight_is_orthogonal_basis_with_spectrum_in_unit_interval():
    # Whatever the parameters hold (the old clamp form let U drift from orthogonal and passed no
    # gradient outside [0, 1]), W = U diag(d) U^T with U orthogonal and d in (0, 1).
    torch.manual_seed(0)
    ode = GraphODE(5, ODEConfig()).double()
    with torch.no_grad():
        ode.mixing.skew.copy_(3.0 * torch.randn(5, 5))
        ode.mixing.spectrum_logit.copy_(torch.tensor([-40.0, -2.0, 0.0, 3.0, 40.0]))
    basis, spectrum = ode.mixing.eigh()
    torch.testing.assert_close(basis.t() @ basis, torch.eye(5, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(ode.mixing(), basis @ torch.diag(spectrum) @ basis.t())
    eigenvalues = torch.linalg.eigvalsh(ode.mixing())
    assert eigenvalues.min() >= -1e-12 and eigenvalues.max() <= 1.0 + 1e-12
    assert ode.mixing.orthogonality_error() < 1e-12
    # The gradient reaches every eigenvalue parameter, also far outside (0, 1) in logit terms.
    ode.mixing().trace().backward()
    assert (ode.mixing.spectrum_logit.grad[1:4] != 0).all()


def test_weight_starts_diagonal_with_distinct_eigenvalues():
    ode = GraphODE(4, ODEConfig())
    spectrum = torch.sigmoid(ode.mixing.spectrum_logit.detach())
    torch.testing.assert_close(ode.mixing(), torch.diag(spectrum))
    assert spectrum.max() == pytest.approx(0.95) and spectrum.min() == pytest.approx(0.5)
    assert len(set(spectrum.tolist())) == 4  # distinct: U is identifiable, its gradient not rounding noise
    # With equal eigenvalues W would not depend on U and this gradient would be rounding noise.
    (ode.mixing() * torch.randn(4, 4, generator=torch.Generator().manual_seed(0))).sum().backward()
    off_diagonal = ode.mixing.skew.grad[~torch.eye(4, dtype=torch.bool)]
    assert off_diagonal.abs().min() > 1e-3
    assert GraphODE(4, ODEConfig(weight="free")).mixing().equal(torch.eye(4))


def test_fixed_step_nfe_is_exact():
    graph = tiny_graph()
    ode = GraphODE(3, ODEConfig(method="rk4", step_size=0.25, T=1.0))
    ode(torch.randn(graph.num_nodes, 3), adjacency_operator(graph, 0.9))
    assert ode.last_nfe == 4 * 4  # 4 steps x 4 stages


def test_nfe_cap_raises_clear_error():
    graph = tiny_graph()
    ode = GraphODE(3, ODEConfig(method="rk4", step_size=0.01, T=1.0))
    ode.nfe_cap = 50
    with pytest.raises(NFECapExceeded, match="more than 50 function evaluations") as error:
        ode(torch.randn(graph.num_nodes, 3), adjacency_operator(graph, 0.9))
    assert isinstance(error.value, DgnodeError)
    assert ode.func.nfe == 51


def test_adaptive_step_cap_raises_nfe_error():
    graph = tiny_graph()
    ode = GraphODE(3, ODEConfig(method="dopri5", rtol=1e-12, atol=1e-14, T=50.0))
    ode.nfe_cap = 30
    with pytest.raises(NFECapExceeded):
        ode(torch.randn(graph.num_nodes, 3, dtype=torch.float64).float(), adjacency_operator(graph, 0.9))


def test_adjoint_gradients_match_backprop_through_solver():
    torch.manual_seed(0)
    graph = tiny_graph()
    adjacency = adjacency_operator(graph, 0.9, dtype=torch.float64)
    grads = []
    for adjoint in (False, True):
        torch.manual_seed(1)
        ode = GraphODE(3, ODEConfig(method="dopri5", rtol=1e-10, atol=1e-12, adjoint=adjoint)).double()
        randomize_weight(ode, 0.2)
        h0 = torch.randn(graph.num_nodes, 3, dtype=torch.float64, requires_grad=True)
        (ode(h0, adjacency) ** 2).sum().backward()
        grads.append((h0.grad.clone(), ode.mixing.skew.grad.clone(), ode.mixing.spectrum_logit.grad.clone()))
        if adjoint:
            assert ode.backward_nfe() > 0
    for plain, adjoint in zip(*grads):
        torch.testing.assert_close(plain, adjoint, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"method": "rk5"}, "ode.method must be one of"),
        ({"rtol": 0.0}, "must be positive"),
        ({"T": -1.0}, "ode.T must be positive"),
        ({"step_size": 0.0}, "ode.step_size must be positive"),
        ({"weight": "diagonal"}, "ode.weight must be one of"),
    ],
)
def test_config_validation(changes, message):
    with pytest.raises(ValueError, match=message):
        ODEConfig(**changes)


def test_solver_options():
    assert ODEConfig(method="rk4", step_size=0.1).solver_options(100) == {"step_size": 0.1}
    assert ODEConfig(method="dopri5").solver_options(100) == {"max_num_steps": 100}
    assert ODEConfig(method="dopri5", options={"max_num_steps": 7, "first_step": 0.1}).solver_options(100) == {
        "max_num_steps": 7,
        "first_step": 0.1,
    }
    assert ODEConfig(method="euler").solver_options(None) == {}
