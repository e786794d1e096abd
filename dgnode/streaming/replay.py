"""Stored dialogues replayed through a trained run: streamed one utterance at a time, or whole.

``dgnode predict`` is a thin layer over these: :func:`select_conversations` picks the dialogues,
:func:`stream_dialogues` pushes their utterances one by one into a
:class:`~dgnode.streaming.predictor.StreamingPredictor` (vectors from the store, or embedded
from the raw media of a manifest) and :func:`predict_dialogues` runs each whole dialogue once.
Each predicted utterance is a row (a dict: ``dialog_id``, ``utt_id``, ``position``,
``speaker``, ``predicted``, ``probability``, ``true``; streaming adds ``latency_ms`` and, when
verifying, ``batch_label``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from dgnode.errors import InputError

__all__ = ["Replay", "predict_dialogues", "select_conversations", "stream_dialogues"]

OnRow = Callable[[dict], None]


@dataclass
class Replay:
    """The rows of a replay; for streaming also the latencies and the batch disagreements."""

    rows: list[dict] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    mismatches: int = 0
    exact: bool = True


def select_conversations(data: Any, dialog_ids: Sequence[str] | None, split: str, limit: int | None, store: str) -> list:
    """The named dialogues (all must exist), else those of ``split``; at most ``limit``."""
    if dialog_ids:
        by_id = {c.dialog_id: c for c in data.conversations}
        missing = [d for d in dialog_ids if d not in by_id]
        if missing:
            examples = ", ".join(sorted(by_id)[:5])
            raise InputError(f"dialogue(s) {missing} not in the store (it has {len(by_id)}, e.g. {examples})", path=store)
        conversations = [by_id[d] for d in dialog_ids]
    else:
        conversations = data.split(split)
        if not conversations:
            raise InputError(f"the store has no {split} dialogues", path=store)
    return conversations[:limit] if limit else conversations


def stream_dialogues(trainer: Any, conversations: Sequence, *, media: str | None = None, checkpoint: str | None = None,
                     device: str = "cpu", verify: bool = False, on_row: OnRow | None = None) -> Replay:
    """Push each utterance of ``conversations`` into a streaming predictor, in order.

    Vectors come from the run's store, or with ``media`` (a manifest) are embedded from each
    utterance's raw media by the store's own extraction model (``checkpoint``: its ImageBind
    weights); the latency then includes the embedding. ``verify`` also runs each whole dialogue
    through the causal model and counts the utterances whose predictions differ.
    """
    import torch

    from dgnode.features.dataset import collate
    from dgnode.features.store import FeatureStore
    from dgnode.streaming.predictor import StreamingPredictor

    store = trainer.config.data.store
    label_names = trainer.data.label_names
    predictor = StreamingPredictor.from_trainer(trainer)
    model = trainer.core_model.eval()
    # The stream delivers raw vectors as stored; the predictor normalises them itself.
    stored = FeatureStore.open(store).load(list(trainer.dims))
    frame = stored.frame
    embed = _media_embedder(store, media, checkpoint, device) if media else None
    replay = Replay(exact=predictor.exact)
    ids = frame["dialog_id"].to_numpy()
    for conversation in conversations:
        positions = np.flatnonzero(ids == conversation.dialog_id)
        if frame["utt_id"].iloc[positions].tolist() != conversation.utt_ids:
            raise InputError(f"dialogue {conversation.dialog_id}: stored rows do not match the loaded dialogue", path=store)
        speakers = frame["speaker"].iloc[positions].astype(str).tolist()
        predictor.start(conversation.dialog_id, speakers=speakers)
        reference = None
        if verify:
            with torch.no_grad():
                reference = model(collate([conversation]).to(trainer.device)).logits.argmax(dim=1).tolist()
        for k, row_index in enumerate(positions.tolist()):
            embed_ms = 0.0
            if embed is not None:
                started = time.perf_counter()
                vectors = embed(frame["utt_id"].iloc[row_index])
                embed_ms = (time.perf_counter() - started) * 1000.0
            else:
                vectors = {m: stored.vectors[m][row_index] for m in trainer.dims}
            prediction = predictor.push(vectors, speakers[k])
            replay.latencies_ms.append(prediction.latency_ms + embed_ms)
            row = _row(conversation, k, speakers[k], prediction.label, prediction.probabilities, label_names)
            row["latency_ms"] = prediction.latency_ms + embed_ms
            if reference is not None:
                row["batch_label"] = label_names[reference[k]]
                replay.mismatches += int(reference[k] != prediction.label)
            _emit(replay, row, on_row)
    return replay


def predict_dialogues(trainer: Any, conversations: Sequence, on_row: OnRow | None = None) -> Replay:
    """Each dialogue in one pass of the model over the whole dialogue."""
    import torch

    from dgnode.features.dataset import collate

    model = trainer.core_model.eval()
    replay = Replay()
    for conversation in conversations:
        with torch.no_grad():
            logits = model(collate([conversation]).to(trainer.device)).logits.float()
            probabilities = torch.softmax(logits, dim=1).cpu().numpy()
        speakers = [str(int(s)) for s in conversation.speakers]
        for k in range(len(conversation)):
            label = int(probabilities[k].argmax())
            _emit(replay, _row(conversation, k, speakers[k], label, probabilities[k], trainer.data.label_names), on_row)
    return replay


def _media_embedder(store: str, manifest: str, checkpoint: str | None, device: str) -> Callable[[str], dict]:
    """``utt_id -> vectors`` embedded from the manifest's media with the store's extraction model."""
    from dgnode.corpus.manifest import load_manifest
    from dgnode.streaming.media import MediaEncoder

    encoder = MediaEncoder.from_store(store, checkpoint, device)
    rows = load_manifest(manifest).set_index("utt_id", drop=False)

    def embed(utt: str) -> dict:
        if utt not in rows.index:
            raise InputError(f"utterance {utt} is not in the media manifest", path=manifest)
        return encoder.encode(rows.loc[utt].to_dict())

    return embed


def _emit(replay: Replay, row: dict, on_row: OnRow | None) -> None:
    replay.rows.append(row)
    if on_row is not None:
        on_row(row)


def _row(conversation: Any, k: int, speaker: str, label: int, probabilities: np.ndarray, label_names: Sequence[str]) -> dict:
    true = int(conversation.labels[k])
    return {
        "dialog_id": conversation.dialog_id,
        "utt_id": conversation.utt_ids[k],
        "position": k,
        "speaker": speaker,
        "predicted": label_names[label],
        "probability": float(probabilities[label]),
        "true": label_names[true] if true >= 0 else "",
    }
