"""Training-config overrides shared by the tuning tests (a module, not a conftest, so tests can import it)."""

# Small model, no dropout (so DDP shards reproduce one process exactly), a fixed-step solver.
TINY_OVERRIDES = {
    "model.hidden": 16,
    "model.dropout": 0.0,
    "model.ode.method": "rk4",
    "model.ode.step_size": 0.5,
    "train.batch_size": 4,
    "train.epochs": 3,
    "train.patience": 0,
    "optim.lr": 0.01,
    "report.plots": False,
    "report.tsne_points": 0,
}


def as_flags(overrides: dict) -> list[str]:
    """The same keys as command-line flags: ``{"model.hidden": 16}`` -> ``["--model.hidden=16"]``."""
    return [f"--{key}={str(value).lower() if isinstance(value, bool) else value}" for key, value in overrides.items()]
