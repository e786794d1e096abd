"""A small synthetic store over part of the real IEMOCAP structure, and causal runs trained on it."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_store(tiny_synthetic_store) -> Path:
    return tiny_synthetic_store


CAUSAL_MODELS = {
    "dgode": {"model.name": "dgode", "model.hidden": 16, "model.ode.method": "rk4", "model.ode.step_size": 0.5},
    "corect": {"model.name": "corect", "model.hidden": 16, "model.rtgraph.heads": 2, "model.pcm.layers": 1,
               "model.pcm.memory_layers": 1},
}


def train_run(store: Path, out: Path, model: dict, extra: dict | None = None) -> Path:
    """A finished run (``config.yaml``, ``best.pt``) of two quick epochs on ``store``."""
    from dgnode.features.dataset import load_conversations
    from dgnode.training.config import load_train_config
    from dgnode.training.loop import fit

    overrides = {**model, "data.store": str(store), "model.dropout": 0.1, "optim.lr": 3e-3, "train.epochs": 2,
                 "train.batch_size": 2, "train.patience": 0, "report.plots": False, **(extra or {})}
    fit(load_train_config(None, overrides), load_conversations(store), out, progress=False)
    return out


@pytest.fixture(scope="session")
def causal_runs(tmp_path_factory, tiny_store) -> dict[str, Path]:
    """``{model: run dir}`` of DGODE and CORECT trained in causal mode (``wf = 0``)."""
    root = tmp_path_factory.mktemp("streaming_runs")
    return {name: train_run(tiny_store, root / name, model, {"model.wf": 0}) for name, model in CAUSAL_MODELS.items()}
