"""Synthetic features over a real conversation structure, with planted multimodal and contextual signal.

Real features cannot ship with the project, but the models still need data on which fusion and
conversational context *measurably* matter. Given a structure file (``dgnode/data/*_structure.json``:
splits, per-dialogue speakers and labels), utterance ``i`` of dialogue ``d``, spoken by ``s``
with label ``y_i``, gets in modality ``m`` a latent vector of dimension ``L = min(latent_dim, D_m)``::

    u_i^m = a_i^m * strength_m * P_m[y_i]         class signal, P_m[c] random unit vectors in R^L
          + mood * Q_m^T f_{d,s}                   speaker state in the dialogue
          + noise * eps_i^m                         eps ~ N(0, I_L)
    x_i^m = scale_m * (E_m u_i^m + ambient_noise * eta_i^m) + offset_m     eta ~ N(0, I_{D_m})

``E_m`` (``D_m x L``) has random orthonormal columns, so the difficulty is the same at any
``D_m`` (a 1582-d audio vector is as informative as a 96-d one), and ``scale_m`` / ``offset_m``
(``offset ~ N(0, I)``) mimic ImageBind's unequal scales (defaults: text x1, audio x20, vision x0.05), which
the dataset's normalisation must undo.

* **Fusion helps.** ``a_i^m ~ Bernoulli(1 - drop)`` independently per (utterance, modality):
  about ``drop`` (default 35%) of the pairs carry no class signal, and a modality alone is
  only partly informative (defaults: ``strength_m`` 1.1-1.6 against ``noise`` 1.0 per latent
  direction, six classes). Combining the
  modalities both adds their evidence and covers the utterances a modality misses.
* **Context helps.** ``f_{d,s}`` is the label distribution of speaker ``s`` over dialogue ``d``
  (IEMOCAP emotions persist within a speaker's turns), mapped through per-class mood vectors
  ``Q_m[c]`` (unit, independent of ``P_m``). It is added to every utterance of that speaker but
  at ``mood`` no larger than ``noise`` spread over ``L`` directions, so one utterance reveals it poorly while averaging the speaker's other
  utterances does. A further ``context_only`` fraction (default 15%) of utterances have
  ``a_i^m = 0`` in every modality: their class is recoverable only from the mood and from
  neighbours' labels. Unlabelled utterances (label ``null``) carry no class signal either.

Randomness comes from one ``numpy.random.SeedSequence(seed)`` with a fixed child per component
(and per modality, keyed by the modality's position in ``MODALITIES``), so a seed reproduces
the store exactly, and a modality's vectors do not change when another's dim does.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dgnode.corpus.splits import SPLITS
from dgnode.errors import InputError
from dgnode.features.store import MODALITIES, FeatureStore, StoreMetadata

__all__ = ["FeatureSynthConfig", "Structure", "generate", "read_structure", "synthesize_features"]

_SESSION_PREFIX_RE = re.compile(r"^Ses(0[1-5])([FM])_")


@dataclass
class FeatureSynthConfig:
    """Knobs of the generative model in the module docstring (defaults tuned on IEMOCAP).

    Attributes:
        noise: latent noise std; higher is harder
        drop: fraction of (utterance, modality) pairs without class signal
        context_only: fraction of utterances with class signal only through context
        mood: strength of the speaker-state vector
        latent_dim: latent dimension L (at most each modality's dim)
        ambient_noise: noise std added after embedding into the modality's dim
        strength: class-signal strength per modality
        scale: scale per modality (ImageBind's unequal scales)
    """

    noise: float = 1.0
    drop: float = 0.35
    context_only: float = 0.15
    mood: float = 1.0
    latent_dim: int = 64
    ambient_noise: float = 0.1
    strength: dict[str, float] = field(default_factory=lambda: {"text": 1.6, "audio": 1.3, "vision": 1.1})
    scale: dict[str, float] = field(default_factory=lambda: {"text": 1.0, "audio": 20.0, "vision": 0.05})

    def validate(self) -> None:
        if self.noise <= 0:
            raise ValueError(f"noise must be > 0, got {self.noise}")
        for name in ("drop", "context_only"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {self.latent_dim}")
        if self.ambient_noise < 0:
            raise ValueError(f"ambient_noise must be >= 0, got {self.ambient_noise}")
        if self.mood < 0:
            raise ValueError(f"mood must be >= 0, got {self.mood}")


@dataclass
class Structure:
    """A conversation structure file, validated: dialogues in file order with their split."""

    dataset: str
    label_names: list[str]
    dialog_ids: list[str]
    splits: list[str]
    speakers: list[list[str]]
    labels: list[list[int | None]]
    skipped: list[str]


def read_structure(path: str | Path) -> Structure:
    """Read and check a ``*_structure.json`` (see ``dgnode/data``); dialogues in no split are skipped."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("structure file not found", path=str(path)) from None
    except json.JSONDecodeError as error:
        raise InputError(f"not valid JSON ({error.msg})", path=str(path), line=error.lineno) from None
    missing = [k for k in ("labels", "splits", "dialogues") if k not in raw] if isinstance(raw, dict) else ["labels", "splits", "dialogues"]
    if missing:
        raise InputError(f"structure lacks key(s) {missing}; expected labels, splits{{train,valid,test}}, dialogues", path=str(path))
    label_names = [str(n) for n in raw["labels"]]
    split_of: dict[str, str] = {}
    for split, ids in raw["splits"].items():
        if split not in SPLITS:
            raise InputError(f"unknown split {split!r}; expected {list(SPLITS)}", path=str(path))
        for dialog_id in ids:
            dialog_id = str(dialog_id)
            if dialog_id in split_of:
                raise InputError(f"dialogue {dialog_id} is in both {split_of[dialog_id]} and {split}", path=str(path))
            if dialog_id not in raw["dialogues"]:
                raise InputError(f"split {split} names dialogue {dialog_id}, which has no entry in dialogues", path=str(path))
            split_of[dialog_id] = split
    structure = Structure(str(raw.get("dataset", path.stem)), label_names, [], [], [], [], [])
    for dialog_id, dialogue in raw["dialogues"].items():
        if dialog_id not in split_of:
            structure.skipped.append(dialog_id)
            continue
        speakers, labels = dialogue.get("speakers"), dialogue.get("labels")
        if not isinstance(speakers, list) or not isinstance(labels, list) or len(speakers) != len(labels) or not labels:
            raise InputError(
                f"dialogue {dialog_id}: expected equally long, non-empty speakers and labels lists", path=str(path)
            )
        for i, label in enumerate(labels):
            if label is not None and not (isinstance(label, int) and 0 <= label < len(label_names)):
                raise InputError(
                    f"dialogue {dialog_id}: utterance {i} has label {label!r}, expected null or 0..{len(label_names) - 1}",
                    path=str(path),
                )
        match = _SESSION_PREFIX_RE.match(dialog_id)
        names = [f"Ses{match.group(1)}.{s}" if match and s in ("F", "M") else str(s) for s in speakers]
        structure.dialog_ids.append(dialog_id)
        structure.splits.append(split_of[dialog_id])
        structure.speakers.append(names)
        structure.labels.append(labels)
    return structure


def synthesize_features(
    structure_path: str | Path,
    store_path: str | Path,
    dims: dict[str, int],
    seed: int = 0,
    config: FeatureSynthConfig | None = None,
) -> FeatureStore:
    """Write a synthetic feature store over ``structure_path``; see the module docstring.

    ``dims`` maps any subset of ``text``/``audio``/``vision`` to a dimension. Returns the store
    (re-running with the same arguments writes nothing new: the rows are already there).
    """
    config = config or FeatureSynthConfig()
    config.validate()
    unknown = sorted(set(dims) - set(MODALITIES))
    if unknown or not dims:
        raise InputError(f"dims must name a non-empty subset of {list(MODALITIES)}, got {sorted(dims)}")
    structure = read_structure(structure_path)
    frame, vectors = generate(structure, dims, seed, config)
    metadata = StoreMetadata(
        model="synthetic",
        dims={m: int(dims[m]) for m in MODALITIES if m in dims},
        label_names=structure.label_names,
        source="synthetic",
        preprocessing={"seed": int(seed), **asdict(config)},
        extra={
            "structure": Path(structure_path).name,
            "structure_sha256": hashlib.sha256(Path(structure_path).read_bytes()).hexdigest(),
            "dataset": structure.dataset,
            "skipped_dialogues": structure.skipped,
        },
    )
    store = FeatureStore.create(store_path, metadata)
    for modality, matrix in vectors.items():
        frame[modality] = list(matrix)
    store.append(frame)
    return store


def generate(
    structure: Structure, dims: dict[str, int], seed: int, config: FeatureSynthConfig
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The rows (key columns) and ``{modality: (N, D_m) float32}`` of the synthetic store."""
    lengths = np.array([len(labels) for labels in structure.labels])
    n = int(lengths.sum())
    num_classes = len(structure.label_names)
    dialog_index = np.repeat(np.arange(len(lengths)), lengths)
    labels = np.array([-1 if v is None else v for labels in structure.labels for v in labels], dtype=np.int64)
    labelled = labels >= 0
    speakers = [s for names in structure.speakers for s in names]
    # One group per (dialogue, speaker): the unit whose label distribution is its "mood".
    _, group = np.unique(np.char.add(dialog_index.astype(str), np.char.add("\x1f", np.array(speakers, dtype=str))), return_inverse=True)
    num_groups = int(group.max()) + 1
    counts = np.zeros((num_groups, num_classes))
    np.add.at(counts, (group[labelled], labels[labelled]), 1.0)
    mood_mix = counts / np.maximum(counts.sum(1, keepdims=True), 1.0)  # (G, C) label distribution f_{d,s}

    root = np.random.SeedSequence(seed)
    shared, *per_modality = root.spawn(1 + len(MODALITIES))
    context_only = np.random.default_rng(shared).random(n) < config.context_only
    vectors = {}
    for k, modality in enumerate(MODALITIES):
        if modality not in dims:
            continue
        dim = int(dims[modality])
        latent = min(config.latent_dim, dim)
        rng = np.random.default_rng(per_modality[k])
        prototypes = _unit_rows(rng.standard_normal((num_classes, latent)))
        mood_vectors = _unit_rows(rng.standard_normal((num_classes, latent)))
        # Orthonormal columns: the latent geometry (and so the difficulty) is the same at any dim.
        embedding = np.linalg.qr(rng.standard_normal((dim, latent)))[0].astype(np.float32)
        offset = rng.standard_normal(dim).astype(np.float32)
        carries = (rng.random(n) >= config.drop) & ~context_only & labelled
        strength = float(config.strength.get(modality, 1.0))
        u = config.noise * rng.standard_normal((n, latent), dtype=np.float32)
        u += (config.mood * mood_mix @ mood_vectors).astype(np.float32)[group]
        u[carries] += (strength * prototypes).astype(np.float32)[labels[carries]]
        x = rng.standard_normal((n, dim), dtype=np.float32)
        x *= config.ambient_noise
        x += u @ embedding.T
        x *= float(config.scale.get(modality, 1.0))
        x += offset
        vectors[modality] = x

    frame = pd.DataFrame(
        {
            "dialog_id": np.repeat(np.array(structure.dialog_ids, dtype=object), lengths),
            "utt_id": [f"{d}_u{i:03d}" for d, length in zip(structure.dialog_ids, lengths) for i in range(length)],
            "order": np.concatenate([np.arange(length) for length in lengths]),
            "speaker": speakers,
            "label": pd.array([None if v < 0 else int(v) for v in labels], dtype="Int32"),
            "split": np.repeat(np.array(structure.splits, dtype=object), lengths),
        }
    )
    return frame, vectors


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
