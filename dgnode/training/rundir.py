"""The files of a run directory, and of a training checkpoint: the one module that names them.

A finished run (``dgnode train --out DIR``, a study run, a tuned trial's checkpoint) holds::

    config.yaml       the resolved TrainConfig            (RunDir.write_config / read_config)
    best.pt           the best model: weights + metadata  (RunDir.save_model / load_model)
    history.json      per-epoch metrics                   (RunDir.write_history / read_history)
    report.json       metrics, data summary, figure names (RunDir.write_report / read_report)
    state.pt          everything to resume (checkpoints of Ray Train and Tune only)
    model.json        inputs of a logged model: dims, labels, normalisation (RunDir.write_model_card)
    eval_SPLIT.json   a later re-evaluation               (RunDir.write_evaluation)

The directory is a local path or an ``s3://`` URI (:func:`dgnode.storage.resolve`); every file is
written whole and atomically either way (a reader never sees half a checkpoint), so a run on any
node of a cluster can write to, and be read back from, the same object-store prefix.

Checkpoints are written with ``torch.save`` and read with ``torch.load(weights_only=True)``: no
pickled code runs when a run is loaded.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from dgnode.errors import InputError
from dgnode.storage import Location, resolve

__all__ = ["RunDir"]


class RunDir:
    """A run (or checkpoint) directory, local or in S3. Nobody else spells these file names."""

    CONFIG = "config.yaml"
    BEST = "best.pt"
    STATE = "state.pt"
    HISTORY = "history.json"
    REPORT = "report.json"
    MODEL_CARD = "model.json"

    def __init__(self, path: "str | os.PathLike[str] | Location") -> None:
        self.location = resolve(path)

    def __repr__(self) -> str:
        return f"RunDir({self.uri!r})"

    # -- where -----------------------------------------------------------------------------------
    @property
    def uri(self) -> str:
        """What a user reads: an absolute local path or ``s3://bucket/key``."""
        return self.location.uri

    @property
    def path(self) -> Path:
        """The local directory; a run in S3 has none (:class:`InputError` naming its URI)."""
        return self.location.local_path()

    @property
    def config_path(self) -> Location:
        return self.location / self.CONFIG

    @property
    def best_path(self) -> Location:
        return self.location / self.BEST

    @property
    def report_path(self) -> Location:
        return self.location / self.REPORT

    def file(self, name: str) -> Location:
        """Where a figure or other run output named ``name`` goes (its name is the caller's)."""
        return self.location / name

    def has_best(self) -> bool:
        return self.best_path.exists()

    def require_finished(self) -> None:
        """:class:`InputError` unless the config and the best model are both there."""
        for name in (self.CONFIG, self.BEST):
            if not (self.location / name).exists():
                raise InputError(f"not a finished run: {name} is missing", path=self.uri)

    # -- config --------------------------------------------------------------------------------
    def write_config(self, config: Any) -> None:
        from dgnode.options import dump_yaml

        self.location.mkdir()
        dump_yaml(config, self.config_path)

    def read_config(self, overrides: dict[str, Any] | None = None) -> Any:
        from dgnode.training.config import load_train_config

        if not self.config_path.exists():
            raise InputError(f"not a finished run: {self.CONFIG} is missing", path=self.uri)
        return load_train_config(self.config_path.uri, overrides)

    # -- tensors -------------------------------------------------------------------------------
    def save_model(self, state: dict[str, Any]) -> Location:
        return self._save(self.BEST, state)

    def load_model(self, device: Any = "cpu") -> dict[str, Any]:
        return self._load(self.BEST, device)

    def save_state(self, state: dict[str, Any]) -> Location:
        return self._save(self.STATE, state)

    def load_state(self, device: Any = "cpu") -> dict[str, Any]:
        return self._load(self.STATE, device)

    # -- JSON ----------------------------------------------------------------------------------
    def write_history(self, history: list[dict[str, Any]]) -> None:
        (self.location / self.HISTORY).write_json({"history": history})

    def read_history(self) -> list[dict[str, Any]]:
        try:
            return (self.location / self.HISTORY).read_json()["history"]
        except FileNotFoundError:
            return []

    def write_report(self, report: dict[str, Any]) -> None:
        self.report_path.write_json(report)

    def read_report(self) -> dict[str, Any] | None:
        """The report, or ``None`` when there is none or it is unreadable (an interrupted write)."""
        try:
            return self.report_path.read_json()
        except (OSError, ValueError):
            return None

    def write_evaluation(self, split: str, summary: dict[str, Any]) -> Location:
        """A re-evaluation of the best model on ``split`` (``dgnode evaluate``)."""
        return (self.location / f"eval_{split}.json").write_json(summary)

    def write_model_card(self, card: dict[str, Any]) -> None:
        (self.location / self.MODEL_CARD).write_json(card)

    def read_model_card(self) -> dict[str, Any]:
        where = self.location / self.MODEL_CARD
        try:
            return where.read_json()
        except (OSError, ValueError) as error:
            raise InputError(f"unreadable model card ({error})", path=where.uri) from None

    def copy_best_to(self, other: "RunDir") -> None:
        if self.has_best():
            other.location.mkdir()
            other.best_path.write_bytes(self.best_path.read_bytes())

    # -- internals -----------------------------------------------------------------------------
    def _save(self, name: str, state: dict[str, Any]) -> Location:
        import torch

        buffer = io.BytesIO()
        torch.save(state, buffer)
        return (self.location / name).write_bytes(buffer.getvalue())

    def _load(self, name: str, device: Any) -> dict[str, Any]:
        import torch

        where = self.location / name
        try:
            data = where.read_bytes()
        except FileNotFoundError:
            raise InputError(f"{name} is missing", path=self.uri) from None
        try:
            return torch.load(io.BytesIO(data), map_location=device, weights_only=True)
        except Exception as error:  # a truncated or foreign file: say which
            raise InputError(f"unreadable checkpoint ({error})", path=where.uri) from None
