"""Conversations read from a feature store, as the graph models consume them.

A :class:`ConversationSet` holds every dialogue of a store as a :class:`Conversation`: the
utterances in conversation order (the store's ``order`` column), one ``(n_utt, dim)`` float32
tensor per modality, the speaker of each utterance as an index among the dialogue's speakers
in order of first appearance (:data:`SPEAKER_ORDER`: a prefix's indices never depend on later
utterances, as streaming needs), and the label (``-1`` for unlabelled utterances, which losses and metrics ignore).

Normalisation (``normalise=``), per modality, applied to every split:

* ``"standard"``: ``x' = (x - mu) / sigma`` per feature dimension, with ``mu`` and ``sigma``
  (population standard deviation) fitted on the rows of the **train split only**, so no
  statistic of the valid or test utterances leaks into training. Dimensions with
  ``sigma < 1e-6`` (constant on train) are only centred (``sigma`` is replaced by 1).
  The fitted ``mu``/``sigma`` are kept in :attr:`ConversationSet.normalisation` so new data can
  be normalised the same way.
* ``"l2"``: ``x' = x / max(||x||_2, 1e-12)`` row by row; nothing is fitted.
* ``"none"``: the stored vectors as they are.

ImageBind's modalities come at different scales (vision unit norm, audio about x20, text
scaled by a learned temperature), which is why the model should never see raw vectors.

Batches (:func:`collate`) concatenate dialogues into one disjoint batch, the layout
torch_geometric uses: ``dialog_index[i]`` says which dialogue row ``i`` belongs to and
``position[i]`` its index inside that dialogue.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Literal, Sequence

import numpy as np
import torch

from dgnode.corpus.splits import SPLITS
from dgnode.errors import InputError
from dgnode.features.store import MODALITIES, FeatureStore
from dgnode.storage import Location

__all__ = [
    "Conversation", "ConversationBatch", "ConversationSet", "L2_FLOOR", "STD_FLOOR", "collate",
    "first_appearance_index", "fit_standard", "iterate_batches", "load_conversations",
]

Normalisation = Literal["standard", "l2", "none"]
STD_FLOOR = 1e-6
SPEAKER_ORDER = "first_appearance"  # how speaker indices are assigned; checkpoints record it
L2_FLOOR = 1e-12


@dataclass
class Conversation:
    """One dialogue: utterances in conversation order."""

    dialog_id: str
    split: str
    utt_ids: list[str]
    features: dict[str, torch.Tensor]  # modality -> (n_utt, dim) float32, normalised
    speakers: torch.Tensor  # (n_utt,) long: the speaker's rank of first appearance in the dialogue
    labels: torch.Tensor  # (n_utt,) long: class index, -1 = unlabelled

    def __len__(self) -> int:
        return len(self.utt_ids)


@dataclass
class ConversationBatch:
    """``B`` dialogues concatenated in order into ``N`` utterance rows (a disjoint batch)."""

    features: dict[str, torch.Tensor]  # modality -> (N, dim)
    speakers: torch.Tensor  # (N,) long
    labels: torch.Tensor  # (N,) long, -1 = unlabelled
    dialog_index: torch.Tensor  # (N,) long in [0, B)
    position: torch.Tensor  # (N,) long, index within its dialogue
    lengths: torch.Tensor  # (B,) long
    dialog_ids: list[str]
    utt_ids: list[str]

    def to(self, device: torch.device | str) -> "ConversationBatch":
        """A copy with every tensor on ``device`` (ids stay Python lists)."""
        return ConversationBatch(
            features={m: x.to(device) for m, x in self.features.items()},
            speakers=self.speakers.to(device),
            labels=self.labels.to(device),
            dialog_index=self.dialog_index.to(device),
            position=self.position.to(device),
            lengths=self.lengths.to(device),
            dialog_ids=list(self.dialog_ids),
            utt_ids=list(self.utt_ids),
        )

    @property
    def num_conversations(self) -> int:
        return len(self.dialog_ids)


@dataclass
class ConversationSet:
    """All dialogues of a store plus what a model needs to size itself.

    ``normalisation`` describes what was applied: ``{"method": "standard"|"l2"|"none"}`` and,
    for ``"standard"``, ``"fit_split": "train"``, ``"fit_rows"`` (number of train utterances),
    ``"std_floor"`` and ``"stats": {modality: {"mean": (dim,) tensor, "std": (dim,) tensor}}``
    (``std`` after the floor, i.e. exactly what the features were divided by).
    """

    conversations: list[Conversation]
    label_names: list[str]
    num_speakers: int
    dims: dict[str, int]
    normalisation: dict
    # Conversation positions with no stored row (failed extraction), over all dialogues.
    missing_utterances: int = 0
    # Stored rows repeating an utt_id (a store written without the writer lock); the first is used.
    duplicates: int = 0

    def split(self, name: str) -> list[Conversation]:
        """The dialogues of one split (``train``, ``valid`` or ``test``), in store order."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {list(SPLITS)}")
        return [c for c in self.conversations if c.split == name]

    @property
    def modalities(self) -> list[str]:
        return list(self.dims)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)


def load_conversations(
    store: "str | Path | Location | FeatureStore",
    modalities: list[str] | None = None,
    normalise: Normalisation = "standard",
    require_train: bool = True,
) -> ConversationSet:
    """Read ``store`` into conversations; see the module docstring for the normalisation.

    ``require_train=False`` (with ``normalise`` other than ``"standard"``) also reads a store
    without train dialogues, e.g. new data for a saved model (:func:`apply_normalisation`).

    ``modalities`` picks any subset of the store's modalities (default: all of them); they are
    returned in :data:`MODALITIES` order whatever order they were asked in.

    Rows repeating an ``utt_id`` are counted in :attr:`ConversationSet.duplicates` and warned
    about, never silently merged. Raises :class:`InputError` (naming the store or the part) when
    a part disagrees with the store's metadata, the store has no train split, a dialogue
    repeats an ``order`` value or spans several splits, a label is outside the label
    names, or a modality is not stored.
    """
    if normalise not in ("standard", "l2", "none"):
        raise ValueError(f"normalise must be 'standard', 'l2' or 'none', got {normalise!r}")
    if not isinstance(store, FeatureStore):
        store = FeatureStore.open(store)
    where = str(store.root)
    if modalities is not None:
        unknown = [m for m in modalities if m not in MODALITIES]
        if unknown:
            raise InputError(f"unknown modalities {unknown}; expected a subset of {list(MODALITIES)}", path=where)
        if not modalities:
            raise InputError("no modality selected", path=where)
        modalities = [m for m in MODALITIES if m in modalities]
    loaded = store.load(modalities)
    if loaded.duplicates:
        warnings.warn(f"{where}: {loaded.duplicates} stored row(s) repeat an utt_id; the first of each (in part-name "
                      "order) is used. See `dgnode features info`", stacklevel=2)
    frame = loaded.frame
    label_names = list(loaded.metadata.label_names)
    wanted = list(loaded.vectors)

    splits = frame["split"].to_numpy()
    if not (splits == "train").any() and (require_train or normalise == "standard"):
        present = sorted(set(splits.tolist()))
        raise InputError(
            f"feature store has no train split (splits present: {present}); "
            "normalisation and training need train dialogues",
            path=where,
        )
    labels = frame["label"].fillna(-1).to_numpy(dtype=np.int64)
    bad = (labels < -1) | (labels >= len(label_names))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"utterance {frame['utt_id'].iat[row]} has label {labels[row]}, outside "
            f"[0, {len(label_names)}) for label names {label_names}",
            path=where,
        )

    vectors = {m: _normalise_rows(loaded.vectors[m], normalise) for m in wanted}
    normalisation: dict = {"method": normalise}
    if normalise == "standard":
        train_rows = splits == "train"
        stats = {}
        for m in wanted:
            mean, std = fit_standard(vectors[m][train_rows])
            vectors[m] = (vectors[m] - mean) / std
            stats[m] = {"mean": torch.from_numpy(mean), "std": torch.from_numpy(std)}
        normalisation.update(fit_split="train", fit_rows=int(train_rows.sum()), std_floor=STD_FLOOR, stats=stats)

    # The store sorts rows by (dialog_id, order): each dialogue is one contiguous run.
    dialog_ids = frame["dialog_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, dialog_ids[1:] != dialog_ids[:-1]])
    ends = np.r_[starts[1:], len(frame)]
    orders = frame["order"].to_numpy(dtype=np.int64)
    utt_ids = frame["utt_id"].tolist()
    speaker_names = frame["speaker"].astype(str).to_numpy()
    tensors = {m: torch.from_numpy(np.ascontiguousarray(vectors[m], dtype=np.float32)) for m in wanted}
    label_tensor = torch.from_numpy(labels)

    conversations = []
    num_speakers = 0
    missing_utterances = 0
    for start, end in zip(starts.tolist(), ends.tolist()):
        dialog_id = str(dialog_ids[start])
        missing_utterances += _check_order(orders[start:end], dialog_id, where)
        dialog_splits = set(splits[start:end].tolist())
        if len(dialog_splits) != 1:
            raise InputError(f"dialogue {dialog_id} is in several splits {sorted(dialog_splits)}", path=where)
        speaker_index = first_appearance_index(speaker_names[start:end])
        num_speakers = max(num_speakers, int(speaker_index.max()) + 1)
        conversations.append(
            Conversation(
                dialog_id=dialog_id,
                split=dialog_splits.pop(),
                utt_ids=utt_ids[start:end],
                # clone: a view would drag the whole store's storage along when pickled (Ray).
                features={m: tensors[m][start:end].clone() for m in wanted},
                speakers=torch.from_numpy(speaker_index.astype(np.int64).reshape(-1)),
                labels=label_tensor[start:end].clone(),
            )
        )
    return ConversationSet(
        conversations=conversations,
        label_names=label_names,
        num_speakers=num_speakers,
        dims={m: int(loaded.metadata.dims[m]) for m in wanted},
        normalisation=normalisation,
        missing_utterances=missing_utterances,
        duplicates=loaded.duplicates,
    )


def collate(conversations: Sequence[Conversation]) -> ConversationBatch:
    """Concatenate dialogues, in the given order, into one :class:`ConversationBatch`."""
    if not conversations:
        raise ValueError("collate needs at least one conversation")
    modalities = list(conversations[0].features)
    for conversation in conversations[1:]:
        if list(conversation.features) != modalities:
            raise ValueError(
                f"conversation {conversation.dialog_id} has modalities {list(conversation.features)}, "
                f"the batch has {modalities}"
            )
    lengths = torch.tensor([len(c.utt_ids) for c in conversations], dtype=torch.long)
    dialog_index = torch.repeat_interleave(torch.arange(len(conversations)), lengths)
    # position = row index minus the start offset of the row's dialogue.
    offsets = torch.cumsum(lengths, 0) - lengths
    position = torch.arange(int(lengths.sum())) - offsets[dialog_index]
    return ConversationBatch(
        features={m: torch.cat([c.features[m] for c in conversations]) for m in modalities},
        speakers=torch.cat([c.speakers for c in conversations]),
        labels=torch.cat([c.labels for c in conversations]),
        dialog_index=dialog_index,
        position=position,
        lengths=lengths,
        dialog_ids=[c.dialog_id for c in conversations],
        utt_ids=[u for c in conversations for u in c.utt_ids],
    )


def iterate_batches(
    conversations: Sequence[Conversation],
    batch_size: int,
    shuffle: bool,
    generator: torch.Generator | None = None,
) -> Iterator[ConversationBatch]:
    """Batches of ``batch_size`` dialogues (the last may be smaller), reshuffled per call.

    With ``shuffle`` the order comes from ``torch.randperm(len, generator=generator)``, so a
    seeded generator gives the same batches on every run.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if shuffle:
        order = torch.randperm(len(conversations), generator=generator).tolist()
    else:
        order = list(range(len(conversations)))
    for start in range(0, len(order), batch_size):
        yield collate([conversations[i] for i in order[start : start + batch_size]])


def apply_normalisation(data: ConversationSet, normalisation: dict) -> ConversationSet:
    """``data`` read with ``normalise="none"``, normalised as ``normalisation`` (a
    :attr:`ConversationSet.normalisation`, e.g. a checkpoint's) says, with its statistics rather
    than statistics refitted on ``data``: the same arithmetic as :func:`load_conversations`."""
    method = normalisation.get("method")
    if data.normalisation.get("method") != "none":
        raise ValueError("apply_normalisation needs data read with normalise='none'")
    stats = normalisation.get("stats", {})
    if method == "standard" and not set(data.dims) <= set(stats):
        raise InputError(f"standard normalisation lacks statistics for {sorted(set(data.dims) - set(stats))}")
    if method not in ("standard", "l2", "none"):
        raise InputError(f"unknown normalisation method {method!r}; expected standard, l2 or none")

    def convert(m: str, x: torch.Tensor) -> torch.Tensor:
        rows = torch.from_numpy(_normalise_rows(x.numpy(), method))
        if method == "standard":
            rows = (rows - torch.as_tensor(stats[m]["mean"]).float()) / torch.as_tensor(stats[m]["std"]).float()
        return rows

    conversations = [
        Conversation(c.dialog_id, c.split, c.utt_ids, {m: convert(m, x) for m, x in c.features.items()}, c.speakers,
                     c.labels)
        for c in data.conversations
    ]
    return replace(data, conversations=conversations, normalisation=dict(normalisation))


def first_appearance_index(names: np.ndarray) -> np.ndarray:
    """Each name's rank of first appearance: ``[B, A, B, C] -> [0, 1, 0, 2]``."""
    _, first, inverse = np.unique(names, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[inverse.reshape(-1)]


def _normalise_rows(matrix: np.ndarray, method: Normalisation) -> np.ndarray:
    matrix = matrix.astype(np.float32, copy=True)
    if method == "l2":
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        matrix /= np.maximum(norms, L2_FLOOR)
    return matrix


def fit_standard(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension ``mu`` and ``sigma`` of the ``(rows, dim)`` train vectors (float32), with
    ``sigma < STD_FLOOR`` replaced by 1 (see the module docstring)."""
    # Accumulate in float64: 1582-d audio features with large means lose digits in float32.
    mean = train.mean(axis=0, dtype=np.float64)
    std = train.std(axis=0, dtype=np.float64)
    std = np.where(std < STD_FLOOR, 1.0, std)
    return mean.astype(np.float32), std.astype(np.float32)


def _check_order(orders: np.ndarray, dialog_id: str, where: str) -> int:
    """``order`` must increase strictly (rows arrive sorted by it); returns how many positions
    are missing. Gaps are allowed: an utterance whose media failed extraction is absent from the
    store, and the conversation goes on without it (rows keep their rank as position)."""
    if np.array_equal(orders, np.arange(len(orders))):
        return 0
    if orders.min() < 0:
        raise InputError(f"dialogue {dialog_id} has negative order value(s) {sorted(set(orders[orders < 0].tolist()))[:5]}", path=where)
    repeated = sorted(set(orders[1:][orders[1:] == orders[:-1]].tolist()))
    if repeated:
        raise InputError(f"dialogue {dialog_id} repeats order value(s) {repeated[:5]}", path=where)
    return int(orders.max()) + 1 - len(orders)
