"""Real-time emotion prediction: one utterance at a time, from what was said so far.

A :class:`StreamingPredictor` wraps a model trained in causal mode (``wf = 0``: no future edge,
forward-only encoders, causally masked attention). For utterance ``i`` it runs the model on the
prefix ``0..i`` of the dialogue and reads the last row::

    predictor = StreamingPredictor.from_run("runs/corect_causal")
    predictor.start("Ses05F_impro01", speakers=["Ses05.F", "Ses05.M"])
    for features, speaker in utterances:              # features: {"text": (1024,), ...} raw
        prediction = predictor.push(features, speaker)  # Prediction(label, probabilities, latency_ms)

Because a causal model's output at ``i`` depends on utterances ``0..i`` only, the prefix run
gives utterance ``i`` exactly the logits the whole-dialogue run gives it; the streaming
predictions therefore equal the batch predictions of the same causal model, utterance by
utterance (the test suite checks it for DGODE and CORECT; probabilities agree to float rounding,
since a prefix is a smaller matrix than the whole dialogue). Re-running the prefix costs
``O(i)`` per utterance, ``O(n^2)`` per dialogue: at IEMOCAP lengths (up to about 110
utterances) that is milliseconds, and it needs no model-specific state caching, so every
registered causal model streams the same way. DGODE with an *adaptive* ODE solver is causal
only up to the solver tolerance (the step sizes depend on the whole graph); its streaming
predictions are the strictly causal ones and may differ from its batch predictions at that
level (:attr:`StreamingPredictor.exact` is ``False``).

Features are pushed *raw* (as the feature store holds them) and normalised exactly as
:func:`dgnode.features.dataset.load_conversations` normalised the training data, with the
statistics the run's checkpoint carries (fitted on its train split when it was trained). Speakers
are given as an index among the dialogue's speakers or as a name: names are indexed in order of
first appearance in the dialogue, the dataset's convention
(:data:`dgnode.features.dataset.SPEAKER_ORDER`), so a prefix's indices never depend on later
utterances; a participant list passed to :meth:`~StreamingPredictor.start` only checks names.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from dgnode.errors import InputError
from dgnode.features.dataset import L2_FLOOR, Conversation, ConversationBatch, ConversationSet
from dgnode.features.store import MODALITIES
from dgnode.streaming.causal import exact_causality, require_causal

__all__ = ["Prediction", "StreamingPredictor", "latency_summary"]

@dataclass
class Prediction:
    """The prediction for one pushed utterance.

    Attributes:
        position: index of the utterance in its dialogue (0-based).
        label: predicted class index, ``argmax`` of ``probabilities``.
        label_name: the class name.
        probabilities: ``(C,)`` softmax of the logits.
        latency_ms: wall time of :meth:`StreamingPredictor.push` (normalisation and model).
    """

    position: int
    label: int
    label_name: str
    probabilities: np.ndarray
    latency_ms: float


class StreamingPredictor:
    """Predict each utterance of a dialogue as it arrives; see the module docstring.

    Args:
        model: a conversation model (``forward(batch) -> ModelOutput``), put in eval mode.
        model_config: its config (must be causal, see :func:`causal_mode`).
        dims: ``{modality: dim}`` of the raw features the model takes, in model order.
        label_names: class names.
        normalisation: :attr:`dgnode.features.dataset.ConversationSet.normalisation` of the
            training data.
        num_speakers: speaker indices the model knows.
        device: where the model runs.
    """

    def __init__(
        self,
        model: nn.Module,
        model_config: Any,
        dims: Mapping[str, int],
        label_names: Sequence[str],
        normalisation: Mapping[str, Any],
        num_speakers: int,
        device: str | torch.device = "cpu",
    ) -> None:
        require_causal(model_config)
        method = normalisation.get("method")
        if method not in ("standard", "l2", "none"):
            raise InputError(f"unknown normalisation method {method!r}; expected standard, l2 or none")
        self.model = model.eval()
        self.model_config = model_config
        self.dims = dict(dims)
        self.label_names = list(label_names)
        self.num_speakers = int(num_speakers)
        self.device = torch.device(device)
        self.method = method
        self.stats = {
            m: (np.asarray(s["mean"], dtype=np.float32), np.asarray(s["std"], dtype=np.float32))
            for m, s in normalisation.get("stats", {}).items()
            if m in self.dims
        }
        if method == "standard" and set(self.stats) != set(self.dims):
            raise InputError(f"standard normalisation lacks statistics for {sorted(set(self.dims) - set(self.stats))}")
        self.exact = exact_causality(model)
        self.dialog_id: str | None = None
        self._participants: list[str] | None = None
        self._speaker_names: dict[str, int] = {}
        self._features: dict[str, list[torch.Tensor]] = {}
        self._speakers: list[int] = []

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_trainer(cls, trainer: Any) -> "StreamingPredictor":
        """A predictor around a :class:`dgnode.training.Trainer`'s model and data."""
        data: ConversationSet = trainer.data
        return cls(
            trainer.core_model,
            trainer.config.model,
            trainer.dims,
            data.label_names,
            data.normalisation,
            data.num_speakers,
            trainer.device,
        )

    @classmethod
    def from_run(cls, run_dir: str | Path, store: str | None = None, device: str = "cpu") -> "StreamingPredictor":
        """The best model of a finished run (``config.yaml`` + ``best.pt``).

        The run must be causal (refused with :class:`NotCausalError` before anything heavy is
        loaded). The features are normalised with the checkpoint's statistics
        (:func:`dgnode.training.best.load_run`), never refitted on the store.
        """
        from dgnode.training.rundir import RunDir
        from dgnode.training.best import load_run

        run = RunDir(run_dir)
        require_causal(run.read_config().model, where=str(run.config_path))
        trainer, _ = load_run(run_dir, store=store, device=device)
        predictor = cls.from_trainer(trainer)
        if not predictor.exact:
            warnings.warn(
                f"{run_dir}: DGODE with an adaptive ODE solver is causal only up to the solver tolerance; "
                "streaming predictions may differ slightly from its batch predictions",
                stacklevel=2,
            )
        return predictor

    # -- streaming -------------------------------------------------------------------------
    def start(self, dialog_id: str | None = None, speakers: Sequence[str] | None = None) -> None:
        """Begin a new dialogue, forgetting the previous one.

        ``speakers``: the participants' names, if known: a pushed name must be one of them. A
        name's index is its rank of first appearance in the dialogue, as in the training data.
        """
        self.dialog_id = dialog_id
        self._participants = sorted(set(map(str, speakers))) if speakers is not None else None
        self._speaker_names = {}
        self._features = {m: [] for m in self.dims}
        self._speakers = []

    @property
    def position(self) -> int:
        """Utterances pushed since :meth:`start`."""
        return len(self._speakers)

    @torch.no_grad()
    def push(self, features: Mapping[str, Any], speaker: int | str, normalised: bool = False) -> Prediction:
        """Add one utterance and predict its emotion from this and the earlier utterances.

        Args:
            features: ``{modality: (dim,) vector}`` for (at least) every modality the model
                uses, raw as in the feature store (``normalised=True``: already normalised).
            speaker: index among the dialogue's speakers, or a name (see :meth:`start`).
        """
        started = time.perf_counter()
        if self.dialog_id is None and not self._features:
            self.start()
        row = {m: self._vector(features, m, normalised) for m in self.dims}
        speaker_index = self._speaker_index(speaker)
        for m, vector in row.items():
            self._features[m].append(vector)
        self._speakers.append(speaker_index)
        output = self.model(self._prefix_batch())
        logits = output.logits[-1].float()
        probabilities = torch.softmax(logits, dim=-1).cpu().numpy()
        label = int(torch.argmax(logits))
        return Prediction(
            position=len(self._speakers) - 1,
            label=label,
            label_name=self.label_names[label],
            probabilities=probabilities,
            latency_ms=(time.perf_counter() - started) * 1000.0,
        )

    def run(self, conversation: Conversation) -> list[Prediction]:
        """Stream a loaded (already normalised) :class:`Conversation`, utterance by utterance."""
        self.start(conversation.dialog_id)
        return [
            self.push({m: conversation.features[m][i] for m in self.dims}, int(conversation.speakers[i]), normalised=True)
            for i in range(len(conversation))
        ]

    # -- helpers ---------------------------------------------------------------------------
    def _vector(self, features: Mapping[str, Any], modality: str, normalised: bool) -> torch.Tensor:
        unknown = sorted(set(features) - set(MODALITIES))
        if unknown:
            raise InputError(f"unknown modalities {unknown} in pushed features; expected {list(self.dims)}")
        if modality not in features:
            raise InputError(f"pushed features lack modality {modality!r}; the model needs {list(self.dims)}")
        value = features[modality]
        array = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype=np.float32)
        if array.shape != (self.dims[modality],):
            raise InputError(
                f"utterance {self.position} of dialogue {self.dialog_id}: {modality} features have shape "
                f"{array.shape}, expected ({self.dims[modality]},)"
            )
        if not np.isfinite(array).all():
            raise InputError(f"utterance {self.position} of dialogue {self.dialog_id}: {modality} features are not finite")
        if not normalised:
            array = self._normalise(array, modality)
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))

    def _normalise(self, array: np.ndarray, modality: str) -> np.ndarray:
        # Same float32 operations as dgnode.features.dataset, so values match bit for bit.
        matrix = array[None, :].astype(np.float32, copy=True)
        if self.method == "l2":
            matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), L2_FLOOR)
        elif self.method == "standard":
            mean, std = self.stats[modality]
            matrix = (matrix - mean) / std
        return matrix[0]

    def _speaker_index(self, speaker: int | str) -> int:
        if isinstance(speaker, (int, np.integer)) and not isinstance(speaker, bool):
            index = int(speaker)
        elif isinstance(speaker, str):
            if self._participants is not None:
                if speaker not in self._participants:
                    raise InputError(f"speaker {speaker!r} is not a participant of dialogue {self.dialog_id} ({self._participants})")
            index = self._speaker_names.setdefault(speaker, len(self._speaker_names))
        else:
            raise InputError(f"speaker must be an index or a name, got {speaker!r}")
        if not 0 <= index < self.num_speakers:
            raise InputError(
                f"speaker index {index} of dialogue {self.dialog_id} is outside the {self.num_speakers} speakers the model knows"
            )
        return index

    def _prefix_batch(self) -> ConversationBatch:
        n = len(self._speakers)
        return ConversationBatch(
            features={m: torch.stack(rows).to(self.device) for m, rows in self._features.items()},
            speakers=torch.tensor(self._speakers, dtype=torch.long, device=self.device),
            labels=torch.full((n,), -1, dtype=torch.long, device=self.device),
            dialog_index=torch.zeros(n, dtype=torch.long, device=self.device),
            position=torch.arange(n, device=self.device),
            lengths=torch.tensor([n], dtype=torch.long, device=self.device),
            dialog_ids=[self.dialog_id or "stream"],
            utt_ids=[f"{self.dialog_id or 'stream'}_{i}" for i in range(n)],
        )


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float]:
    """``count``, ``mean``, ``p50``, ``p95`` and ``max`` of per-utterance latencies (ms)."""
    if not latencies_ms:
        return {"count": 0, "mean": math.nan, "p50": math.nan, "p95": math.nan, "max": math.nan}
    values = np.asarray(latencies_ms, dtype=np.float64)
    return {
        "count": int(values.size),
        "mean": float(values.mean()),
        "p50": float(np.percentile(values, 50)),
        "p95": float(np.percentile(values, 95)),
        "max": float(values.max()),
    }
