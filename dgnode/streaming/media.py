"""Live input from raw media: one utterance's video/audio/text -> the vectors its store holds.

:class:`MediaEncoder` rebuilds the extraction of a feature store (the same ImageBind, the same
seed for a random-init model, the same preprocessing parameters from ``metadata.json``) and runs
one utterance through the same CPU preprocessing and embedding code as ``dgnode extract``, so a
run trained on that store can be fed straight from a call or a meeting::

    encoder = MediaEncoder.from_store("features/", checkpoint="imagebind_huge.pth")
    predictor = StreamingPredictor.from_run("runs/causal")
    predictor.start("call-42", speakers=["agent", "customer"])
    for utterance in live_utterances():        # dicts with the manifest's media columns
        print(predictor.push(encoder.encode(utterance), utterance["speaker"]).label_name)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from dgnode.options import parse
from dgnode.errors import InputError
from dgnode.features.store import FeatureStore, StoreMetadata

__all__ = ["MediaEncoder"]


class MediaEncoder:
    """Embeds raw utterances exactly as the extraction that made ``metadata``'s store did."""

    def __init__(self, metadata: StoreMetadata, checkpoint: str | None = None, device: str = "cpu") -> None:
        from dgnode.embedding.actor import EmbedActor
        from dgnode.embedding.model import sha256_file
        from dgnode.media.config import MediaConfig

        kind = metadata.extra.get("model_kind")
        if metadata.source != "imagebind" or kind not in ("tiny", "huge"):
            raise InputError(
                f"this store was not made by `dgnode extract` (source {metadata.source!r}); "
                "raw media can only be streamed into a run trained on extracted features"
            )
        sha = metadata.checkpoint_sha256
        if sha and not checkpoint:
            raise InputError(f"the store was extracted with a checkpoint (sha256 {sha[:12]}...): pass it to embed media")
        if sha and checkpoint and sha256_file(checkpoint) != sha:
            raise InputError(f"checkpoint differs from the one the store was extracted with (sha256 {sha[:12]}...)", path=checkpoint)
        media = {k: v for k, v in metadata.preprocessing.items() if k in ("video", "audio", "text")}
        self.media = parse(MediaConfig, media, source="store metadata.json")
        self.modalities = metadata.modalities
        self.actor = EmbedActor(
            kind,
            self.modalities,
            chunk_sizes={m: 1 for m in self.modalities},
            checkpoint=checkpoint,
            checkpoint_sha256=sha,
            device=device,
            seed=int(metadata.extra.get("seed", 0)),
            text_config=self.media.text,
        )

    @classmethod
    def from_store(cls, store: str | Path, checkpoint: str | None = None, device: str = "cpu") -> "MediaEncoder":
        return cls(FeatureStore.open(store).metadata, checkpoint, device)

    def encode(self, utterance: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """``{modality: (dim,) float32}`` raw vectors of one utterance (a manifest-like mapping)."""
        from dgnode.media.utterance import REQUEST_COLUMNS, preprocess_batch

        missing = [c for c in REQUEST_COLUMNS if c not in utterance]
        if missing:
            raise InputError(f"utterance lacks {missing}; expected the manifest's columns {list(REQUEST_COLUMNS)}")
        batch = preprocess_batch(pd.DataFrame([dict(utterance)]), self.modalities, self.media)
        errors = {m: str(batch[f"error_{m}"][0]) for m in self.modalities if str(batch[f"error_{m}"][0])}
        if errors:
            raise InputError(f"utterance {utterance['utt_id']}: " + "; ".join(f"{m}: {e}" for m, e in errors.items()))
        out = self.actor({k: v for k, v in batch.items() if k == "utt_id" or k in self.modalities})
        failed = {m: str(out[f"error_{m}"][0]) for m in self.modalities if f"error_{m}" in out and str(out[f"error_{m}"][0])}
        if failed:
            raise InputError(f"utterance {utterance['utt_id']}: " + "; ".join(f"{m}: {e}" for m, e in failed.items()))
        return {m: np.asarray(out[f"emb_{m}"][0], dtype=np.float32) for m in self.modalities}
