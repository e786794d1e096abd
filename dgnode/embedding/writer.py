"""The driver's side of extraction: embedded batches -> store rows, failure rows, provenance rows.

Every batch is written as it arrives, so an interrupted run loses at most the batches in flight.
A batch's rows, provenance and failure rows are written under the store's writer lock, the
provenance committed with the rows (see :mod:`dgnode.features.store`): another extraction into
the same store at once stores each utterance once, and its skipped rows count as ``duplicates``.
One bad item never stops the run: an input that cannot be read gets a failure row per modality
(``FeatureStore.append_failures``) and its utterance is not stored (the store holds only
utterances with every requested modality); a later run retries it and replaces those rows.
Which frames and which audio source each utterance used is its provenance. What each node
fetched from object storage for its decode batches is summed per node into ``summary.fetched``.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
import pandas as pd

from dgnode.embedding.stages import FETCH_NODE_COLUMN
from dgnode.embedding.summary import BatchReport, ExtractSummary
from dgnode.features.store import KEY_COLUMNS, FeatureStore

__all__ = ["BatchWriter"]


class BatchWriter:
    """Writes embedded batches into ``store`` and counts what happened into ``summary``.

    A batch carries ``utt_id`` and the embedding columns; the key columns of each row come from
    ``manifest`` (as loaded for the run, unique ``utt_id``).
    """

    def __init__(
        self, store: FeatureStore, manifest: pd.DataFrame, manifest_path: str, modalities: Sequence[str],
        summary: ExtractSummary,
    ) -> None:
        self.store = store
        self.manifest_path = manifest_path
        self.by_id = manifest.set_index("utt_id", drop=False)
        self.modalities = list(modalities)
        self.summary = summary
        self.known = store.stored_utt_ids()
        self.earlier_failures = set(store.load_failures()["utt_id"])
        self.seconds = {f"decode {m}": 0.0 for m in self.modalities} | {"embed": 0.0, "write": 0.0}
        self.calls: set[str] = set()

    def write(self, batch: dict[str, np.ndarray], index: int) -> BatchReport:
        started = time.perf_counter()
        ids = [str(u) for u in batch["utt_id"]]
        n = len(ids)
        errors = {m: np.asarray(batch[f"error_{m}"]).astype(str) for m in self.modalities}
        good = np.array([all(not errors[m][i] for m in self.modalities) for i in range(n)], dtype=bool)
        rows = self.by_id.loc[ids]

        stored = 0
        provenance = _provenance(batch, ids)
        # One critical section per batch: another extraction into the same store commits
        # before or after it, never between its rows, provenance and failure rows.
        with self.store.writing(f"batch {index}"):
            if good.any():
                frame = rows.loc[good, list(KEY_COLUMNS)].reset_index(drop=True)
                for m in self.modalities:
                    frame[m] = list(np.asarray(batch[f"emb_{m}"], dtype=np.float32)[good])
                stored = self.store.append(frame, skip_ids=self.known, provenance=provenance)
                self.summary.duplicates += int(good.sum()) - stored
            else:
                self.store.append_provenance(provenance)
            # Failure rows describe the latest attempt: forget earlier ones of every retried utterance.
            retried = set(ids) & self.earlier_failures
            if retried:
                self.store.clear_failures(retried)
                self.earlier_failures -= retried
            self._write_failures(batch, ids, rows, errors, good)
        self._count(batch, good, n)
        failed = int((~good).sum())
        self.summary.stored += stored
        self.summary.failed += failed
        self.summary.batches += 1
        self.seconds["write"] += time.perf_counter() - started
        return BatchReport(index, stored, failed, ids)

    def _write_failures(self, batch: dict[str, np.ndarray], ids: list[str], rows: pd.DataFrame,
                        errors: dict[str, np.ndarray], good: np.ndarray) -> None:
        failures = []
        for i in np.flatnonzero(~good):
            row = rows.iloc[i]
            for m in self.modalities:
                if errors[m][i]:
                    failures.append({
                        "utt_id": ids[i], "dialog_id": row["dialog_id"], "modality": m,
                        "path": _failure_path(row, m, self.manifest_path), "error": errors[m][i],
                    })
                    self.summary.failures_by_modality[m] = self.summary.failures_by_modality.get(m, 0) + 1
        if failures:
            self.store.append_failures(pd.DataFrame(failures))

    def _count(self, batch: dict[str, np.ndarray], good: np.ndarray, n: int) -> None:
        for m in self.modalities:
            self.seconds[f"decode {m}"] += float(np.sum(batch.get(f"seconds_{m}", 0.0)))
        self.seconds["embed"] += float(np.sum(batch.get("seconds_embed", 0.0)))
        if "embed_batch" in batch and n:
            # Ray may split or merge the actors' output blocks: count each actor call once.
            for call, peak, retries in zip(batch["embed_batch"], batch["peak_memory_bytes"], batch["oom_retries"]):
                if call not in self.calls:
                    self.calls.add(str(call))
                    self.summary.peak_memory_bytes = max(self.summary.peak_memory_bytes, int(peak))
                    self.summary.oom_retries += int(retries)
        if FETCH_NODE_COLUMN in batch and "fetched_bytes" in batch:
            for node, files, size, hits in zip(batch[FETCH_NODE_COLUMN], batch["fetched_files"],
                                               batch["fetched_bytes"], batch["fetch_hits"]):
                if files or size or hits:
                    self.summary.count_fetched(str(node), int(files), int(size), int(hits))
        if "audio_source" in batch:
            self.summary.audio_from_video += int(np.sum((np.asarray(batch["audio_source"]).astype(str) == "avi") & good))


def _provenance(batch: dict[str, np.ndarray], ids: list[str]):
    """Frames, audio source and decode times used per utterance of ``batch``, as an Arrow table."""
    import pyarrow as pa

    columns: dict[str, Any] = {"utt_id": ids}
    for key in ("frame_indices", "frame_times", "frames_clamped"):
        if key in batch:
            columns[key] = [list(map(_plain, row)) for row in np.asarray(batch[key])]
    for key in ("audio_source", "audio_notes"):
        if key in batch:
            columns[key] = [str(v) for v in batch[key]]
    for key in [k for k in batch if k.startswith("seconds_")]:
        columns[key] = [float(v) for v in batch[key]]
    return pa.table(columns)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _failure_path(row: pd.Series, modality: str, manifest_path: str) -> str:
    """The file(s) behind a failed input: the video, the wav then the video, or the manifest (text)."""
    if modality == "vision":
        return str(row.get("video_path") or "")
    if modality == "audio":
        return " | ".join(str(p) for p in (row.get("wav_path"), row.get("video_path")) if p)
    return manifest_path
