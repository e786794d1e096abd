"""The files of a run directory, and of a training checkpoint: the one module that names them.

A finished run (``dgnode train --out DIR``, a study run, a tuned trial's checkpoint) holds::

    config.yaml     the resolved TrainConfig            (RunDir.write_config / read_config)
    best.pt         the best model: weights + metadata  (RunDir.save_model / load_model)
    history.json    per-epoch metrics                   (RunDir.write_history / read_history)
    report.json     metrics, data summary, figure names (RunDir.write_report / read_report)
    state.pt        everything to resume (checkpoints of Ray Train and Tune only)
    model.json      inputs of a logged model: dims, labels, normalisation (RunDir.write_model_card)

Checkpoints are written with ``torch.save`` and read with ``torch.load(weights_only=True)``: no
pickled code runs when a run is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dgnode.atomic import atomic_write, write_json
from dgnode.errors import InputError

__all__ = ["RunDir"]


class RunDir:
    """A run (or checkpoint) directory. Nobody else spells these file names."""

    CONFIG = "config.yaml"
    BEST = "best.pt"
    STATE = "state.pt"
    HISTORY = "history.json"
    REPORT = "report.json"
    MODEL_CARD = "model.json"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- paths ---------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / self.CONFIG

    @property
    def best_path(self) -> Path:
        return self.path / self.BEST

    @property
    def report_path(self) -> Path:
        return self.path / self.REPORT

    def has_best(self) -> bool:
        return self.best_path.exists()

    def require_finished(self) -> None:
        """:class:`InputError` unless the config and the best model are both there."""
        for name in (self.CONFIG, self.BEST):
            if not (self.path / name).exists():
                raise InputError(f"not a finished run: {name} is missing", path=str(self.path))

    # -- config --------------------------------------------------------------------------------
    def write_config(self, config: Any) -> None:
        from dgnode.options import dump_yaml

        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write(self.config_path, lambda tmp: dump_yaml(config, tmp))

    def read_config(self, overrides: dict[str, Any] | None = None) -> Any:
        from dgnode.training.config import load_train_config

        if not self.config_path.exists():
            raise InputError(f"not a finished run: {self.CONFIG} is missing", path=str(self.path))
        return load_train_config(self.config_path, overrides)

    # -- tensors -------------------------------------------------------------------------------
    def save_model(self, state: dict[str, Any]) -> Path:
        return self._save(self.BEST, state)

    def load_model(self, device: Any = "cpu") -> dict[str, Any]:
        return self._load(self.BEST, device)

    def save_state(self, state: dict[str, Any]) -> Path:
        return self._save(self.STATE, state)

    def load_state(self, device: Any = "cpu") -> dict[str, Any]:
        return self._load(self.STATE, device)

    # -- JSON ----------------------------------------------------------------------------------
    def write_history(self, history: list[dict[str, Any]]) -> None:
        write_json(self.path / self.HISTORY, {"history": history})

    def read_history(self) -> list[dict[str, Any]]:
        path = self.path / self.HISTORY
        return json.loads(path.read_text(encoding="utf-8"))["history"] if path.exists() else []

    def write_report(self, report: dict[str, Any]) -> None:
        write_json(self.report_path, report)

    def read_report(self) -> dict[str, Any] | None:
        """The report, or ``None`` when there is none or it is unreadable (an interrupted write)."""
        try:
            return json.loads(self.report_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def write_model_card(self, card: dict[str, Any]) -> None:
        write_json(self.path / self.MODEL_CARD, card)

    def read_model_card(self) -> dict[str, Any]:
        path = self.path / self.MODEL_CARD
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise InputError(f"unreadable model card ({error})", path=str(path)) from None

    def copy_best_to(self, other: "RunDir") -> None:
        import shutil

        if self.has_best():
            other.path.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self.best_path, other.best_path)

    # -- internals -----------------------------------------------------------------------------
    def _save(self, name: str, state: dict[str, Any]) -> Path:
        import torch

        return atomic_write(self.path / name, lambda tmp: torch.save(state, tmp))

    def _load(self, name: str, device: Any) -> dict[str, Any]:
        import torch

        path = self.path / name
        if not path.exists():
            raise InputError(f"{name} is missing", path=str(self.path))
        try:
            return torch.load(path, map_location=device, weights_only=True)
        except Exception as error:  # a truncated or foreign file: say which
            raise InputError(f"unreadable checkpoint ({error})", path=str(path)) from None
