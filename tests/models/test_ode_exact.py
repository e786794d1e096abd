"""`model.ode.method: exact`: the closed form against tight dopri5 solves, its error bound, its
gradients, causality and the NFE it reports."""

from __future__ import annotations

import math

import pytest
import torch

from dgnode.features.dataset import collate
from dgnode.graph import adjacency_operator, batch_spectral_bounds, build_edges, normalized_adjacency
from dgnode.models import build_model
from dgnode.models.graph_ode import GraphODE, NFECapExceeded, ODEConfig
from dgnode.models.ode_exact import exact_coefficients, truncation_terms

from .conftest import DIMS, make_conversations  # noqa: F401
from .test_graph_ode import closed_form, randomize_weight

LENGTHS = [5, 2, 7]
GRAPHS = [(-1, -1), (-1, 0), (2, 0), (3, 1)]
GRAPH_IDS = ["undirected", "causal", "causal-window2", "directed-window"]


def batch_graph(wp: int, wf: int, modalities: int = 3):
    dialog_index = torch.cat([torch.full((n,), i) for i, n in enumerate(LENGTHS)])
    position = torch.cat([torch.arange(n) for n in LENGTHS])
    return build_edges(dialog_index, position, torch.tensor(LENGTHS), modalities, wp, wf)


def solve(method: str, graph, wp: int, wf: int, h0: torch.Tensor, seed: int = 0, T: float = 1.3, **config):
    torch.manual_seed(seed)
    ode = GraphODE(h0.shape[1], ODEConfig(method=method, T=T, **config)).to(h0.dtype)
    randomize_weight(ode, 0.5)
    bounds = batch_spectral_bounds(torch.tensor(LENGTHS), 3, wp, wf, 0.9)
    out = ode(h0, adjacency_operator(graph, 0.9, dtype=h0.dtype), bounds)
    return out, ode


@pytest.mark.parametrize("wp,wf", GRAPHS, ids=GRAPH_IDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_exact_matches_tight_dopri5(wp, wf, dtype):
    graph = batch_graph(wp, wf)
    h0 = torch.randn(graph.num_nodes, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    reference, _ = solve("dopri5", graph, wp, wf, h0, rtol=1e-11, atol=1e-13)
    exact, ode = solve("exact", graph, wp, wf, h0.to(dtype), rtol=1e-6)
    error = float((exact.detach().double() - reference.detach()).abs().max())
    assert error <= 1e-5
    if dtype == torch.float64:  # within the stated bound ||H_K - H||_F <= R_K ||H_0||_F
        frobenius = float(torch.linalg.matrix_norm(exact.detach() - reference.detach()))
        assert frobenius <= ode.last_truncation_bound * float(torch.linalg.matrix_norm(h0)) + 1e-9
        assert ode.last_truncation_bound <= 1e-6
    assert ode.last_nfe >= 1


@pytest.mark.parametrize("rtol", [1e-2, 1e-4, 1e-8])
def test_error_stays_within_the_bound_at_every_tolerance(rtol):
    graph = batch_graph(-1, 0)
    h0 = torch.randn(graph.num_nodes, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    exact, ode = solve("exact", graph, -1, 0, h0, T=2.0, rtol=rtol)
    expected = closed_form(normalized_adjacency(graph, 0.9, dtype=torch.float64).to_dense(), ode.mixing().detach(), h0, 2.0)
    relative = float(torch.linalg.matrix_norm(exact.detach() - expected) / torch.linalg.matrix_norm(h0))
    assert relative <= ode.last_truncation_bound <= rtol
    if rtol == 1e-8:
        assert relative < 1e-10


def test_truncation_is_the_smallest_that_meets_the_bound():
    for norm, T, shift, tolerance in [(0.9, 1.0, 1.0, 1e-3), (1.66, 1.0, 1.1, 1e-6), (0.9, 3.0, 1.5, 1e-5)]:
        terms, bound = truncation_terms(norm, T, shift, tolerance)
        assert bound <= tolerance
        beta = exact_coefficients(torch.tensor([shift], dtype=torch.float64), T, terms)[:, 0]
        # R_{K-1} = R_K + β_K ρ^K exceeds the tolerance: one term fewer would not do.
        assert bound + float(beta[terms]) * norm**terms > tolerance
    assert truncation_terms(0.9, 1.0, 1.0, 1e-3)[0] == 5  # the numbers quoted in the docstring
    assert truncation_terms(1.66, 1.0, 1.0, 1e-6)[0] == 11


def test_coefficients_match_their_integral_definition():
    c, T = torch.tensor([1.0, 1.37, 2.0], dtype=torch.float64), 1.7
    beta = exact_coefficients(c, T, 8)
    s = torch.linspace(0.0, T, 200001, dtype=torch.float64)
    for k in range(9):
        integrand = torch.exp(-c[:, None] * s) * s**k / math.factorial(k)
        integral = torch.trapezoid(integrand, s, dim=1)
        expected = torch.exp(-c * T) * T**k / math.factorial(k) + integral
        torch.testing.assert_close(beta[k], expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("wp,wf", [(-1, -1), (-1, 0)], ids=["undirected", "causal"])
def test_gradients_match_backprop_through_a_tight_solver(wp, wf):
    graph = batch_graph(wp, wf)
    grads = []
    for method, config in (("dopri5", {"rtol": 1e-11, "atol": 1e-13}), ("exact", {"rtol": 1e-10})):
        h0 = torch.randn(graph.num_nodes, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64,
                         requires_grad=True)
        out, ode = solve(method, graph, wp, wf, h0, **config)
        (out**2).sum().backward()
        grads.append((h0.grad, ode.mixing.skew.grad, ode.mixing.spectrum_logit.grad))
    for reference, exact in zip(*grads):
        torch.testing.assert_close(exact, reference, rtol=1e-6, atol=1e-8)


def test_exact_solver_in_dgode_is_causal_batch_independent_and_counts_products():
    config = {"name": "dgode", "hidden": 8, "wf": 0, "ode": {"method": "exact", "rtol": 1e-6}}
    torch.manual_seed(0)
    model = build_model(config, DIMS, 2, 3).eval()
    conversations = make_conversations([6, 4, 5])
    with torch.no_grad():
        output = model(collate(conversations))
        before = output.logits
        for features in conversations[0].features.values():
            features[3] += 5.0
        after = model(collate(conversations)).logits
        single = torch.cat([model(collate([c])).logits for c in conversations])
    assert torch.equal(before[:3], after[:3]) and torch.equal(before[6:], after[6:])
    assert not torch.allclose(before[3:6], after[3:6])
    torch.testing.assert_close(after, single, rtol=0, atol=1e-5)  # K may differ per dialogue: within rtol
    assert output.nfe == model.ode.last_nfe and 1 <= output.nfe <= 20


def test_nfe_cap_and_config_errors():
    graph = batch_graph(-1, -1)
    ode = GraphODE(3, ODEConfig(method="exact", T=3.0, rtol=1e-9))
    ode.nfe_cap = 5
    with pytest.raises(NFECapExceeded, match="products with Â"):
        ode(torch.randn(graph.num_nodes, 3), adjacency_operator(graph, 0.9))
    with pytest.raises(ValueError, match="exact needs W's orthogonal eigenbasis"):
        ODEConfig(method="exact", weight="free")
    # Without spectral bounds the operator's entries give looser but valid ones.
    ode.nfe_cap = None
    ode(torch.randn(graph.num_nodes, 3), adjacency_operator(graph, 0.9))
    assert ode.last_truncation_bound <= 1e-9
