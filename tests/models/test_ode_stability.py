"""The graph ODE's stability guarantee holds throughout training and is logged per epoch."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dgnode.features.dataset import ConversationSet
from dgnode.graph import build_edges, dialogue_spectral_bounds, normalized_adjacency
from dgnode.models.graph_ode import GraphODE
from dgnode.training.config import load_train_config
from dgnode.training.loop import Hooks, run_epochs
from dgnode.training.trainer import Trainer

from .conftest import DIMS, make_conversations  # noqa: F401


def tiny_data() -> ConversationSet:
    conversations = make_conversations([6, 4, 7, 5, 3, 6, 4, 5], seed=3)
    splits = ["train"] * 6 + ["valid", "test"]
    return ConversationSet(
        conversations=[dataclasses.replace(c, split=s) for c, s in zip(conversations, splits)],
        label_names=["a", "b", "c"], num_speakers=2, dims=dict(DIMS), normalisation={"method": "none"},
    )


def operator_spectrum(length: int, wp: int, wf: int, alpha: float, weight: torch.Tensor) -> tuple[float, float]:
    """Largest real part of an eigenvalue and largest eigenvalue of the symmetric part of the dense
    ODE operator K = I ⊗ (Â - I) + (W - I)^T ⊗ I of one dialogue's graph (float64)."""
    graph = build_edges(torch.zeros(length, dtype=torch.long), torch.arange(length), torch.tensor([length]),
                        len(DIMS), wp, wf)
    adjacency = normalized_adjacency(graph, alpha, dtype=torch.float64, layout=torch.sparse_coo).to_dense()
    v, d = adjacency.shape[0], weight.shape[0]
    k = (torch.kron(torch.eye(d, dtype=torch.float64), adjacency - torch.eye(v, dtype=torch.float64))
         + torch.kron((weight.double() - torch.eye(d, dtype=torch.float64)).t().contiguous(), torch.eye(v, dtype=torch.float64)))
    return float(torch.linalg.eigvals(k).real.max()), float(torch.linalg.eigvalsh((k + k.t()) / 2).max())


class Recorder(Hooks):
    def __init__(self) -> None:
        self.epochs: list[dict] = []

    def end_epoch(self, trainer, metrics, history) -> None:
        self.epochs.append(dict(metrics))


@pytest.mark.parametrize("wp,wf", [(-1, -1), (-1, 0), (2, 1)], ids=["undirected", "causal", "directed-window"])
def test_growth_bound_holds_after_every_step_and_is_logged_per_epoch(wp, wf):
    alpha = 0.9
    # A high learning rate for a tiny model: the old clamp form let U drift from orthogonal and
    # the eigenvalues of W pass 1 under such steps.
    config = load_train_config(None, {
        "model.name": "dgode", "model.hidden": 6, "model.dropout": 0.0, "model.wp": wp, "model.wf": wf,
        "model.alpha": alpha, "model.ode.method": "rk4", "model.ode.step_size": 0.5, "optim.lr": 0.2,
        "train.epochs": 4, "train.batch_size": 2, "train.patience": 0, "report.plots": False,
    })
    data = tiny_data()
    trainer = Trainer(config, data)
    ode = next(m for m in trainer.core_model.modules() if isinstance(m, GraphODE))
    lengths = sorted({len(c) for c in data.conversations})
    checked = []
    step = trainer.optimizer.step

    def checked_step(*args, **kwargs):
        result = step(*args, **kwargs)
        weight = ode.mixing().detach()
        eigenvalues = torch.linalg.eigvalsh(weight.double())
        assert eigenvalues.min() >= -1e-6 and eigenvalues.max() <= 1.0 + 1e-6
        assert ode.mixing.orthogonality_error() < 1e-5
        for length in lengths:
            abscissa, log_norm = operator_spectrum(length, wp, wf, alpha, weight)
            bound = dialogue_spectral_bounds(length, len(DIMS), wp, wf, alpha).symmetric_max + float(eigenvalues.max()) - 2
            assert abscissa <= bound + 1e-6 and log_norm <= bound + 1e-6  # the bound is the log-norm of K
            assert log_norm >= bound - 1e-5  # ... and tight: the Kronecker sum of the symmetric parts
            if wp == wf:
                assert bound <= alpha - 1.0 + 1e-9  # undirected: a contraction at every moment
            if wf == 0:
                assert abscissa <= alpha - 1.0 + 1e-6  # causal: every mode decays
        checked.append(1)
        return result

    trainer.optimizer.step = checked_step
    recorder = Recorder()
    run_epochs(trainer, recorder)
    assert len(checked) == 4 * 3  # 6 train dialogues in batches of 2, 4 epochs
    assert len(recorder.epochs) == 4
    largest = max(dialogue_spectral_bounds(n, len(DIMS), wp, wf, alpha).symmetric_max for n in lengths)
    for metrics in recorder.epochs:
        assert metrics["diag_ode_adjacency_symmetric_max"] == pytest.approx(largest)
        assert 0.0 < metrics["diag_ode_weight_eig_min"] <= metrics["diag_ode_weight_eig_max"] < 1.0
        assert metrics["diag_ode_growth_bound"] == pytest.approx(largest + metrics["diag_ode_weight_eig_max"] - 2)
        assert metrics["diag_ode_orthogonality_error"] < 1e-5
        assert metrics["nfe"] == 8.0
    # Training moved W: the check above ran on non-trivial weights.
    assert recorder.epochs[-1]["diag_ode_weight_eig_min"] < 0.89 or recorder.epochs[-1]["diag_ode_weight_eig_max"] > 0.91


def test_models_without_diagnostics_report_none():
    config = load_train_config(None, {"model.name": "mlp", "model.hidden": 6, "train.epochs": 1})
    trainer = Trainer(config, tiny_data())
    assert trainer.diagnostics() == {}
    recorder = Recorder()
    run_epochs(trainer, recorder)
    assert not any(k.startswith("diag_") for k in recorder.epochs[0])
