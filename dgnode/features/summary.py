"""What a feature store holds, counted: rows, dialogues and labels per split, dims, fingerprint,
and rows stored twice (reported, never hidden)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dgnode.corpus.splits import SPLITS
from dgnode.features.store import FeatureStore
from dgnode.storage import Location

__all__ = ["StoreSummary", "describe_store"]


@dataclass
class StoreSummary:
    root: str
    model: str
    source: str
    created: str
    fingerprint: str
    dims: dict[str, int]
    rows: int
    dialogues: dict[str, int]  # split -> dialogues
    utterances: dict[str, int]  # split -> rows
    label_counts: dict[str, dict[str, int]]  # label name (or "unlabelled") -> split -> rows
    failures: int
    duplicates: int = 0  # stored rows repeating an earlier row's utt_id (not counted in ``rows``)

    def table_rows(self) -> list[tuple[str, str]]:
        """``(what, value)`` lines for a summary table (``dgnode features info``)."""
        return [
            ("store", self.root),
            ("model / source", f"{self.model} / {self.source}"),
            ("created", self.created),
            ("fingerprint", self.fingerprint),
            ("rows", str(self.rows)),
            ("dims", ", ".join(f"{m} {d}" for m, d in self.dims.items())),
            *((split, f"{self.dialogues[split]} dialogues, {self.utterances[split]} utterances") for split in self.dialogues),
            *((f"label {name}", " / ".join(f"{s} {n}" for s, n in per_split.items()))
              for name, per_split in self.label_counts.items()),
            ("failures", str(self.failures)),
            ("duplicate rows", str(self.duplicates) if not self.duplicates else
             f"{self.duplicates} (rows repeating a stored utt_id, written without the store's lock; "
             "reading keeps the first in part-name order)"),
        ]


def describe_store(store: "str | Path | Location | FeatureStore") -> StoreSummary:
    """Count a store's contents from its key columns (vectors are not read)."""
    if not isinstance(store, FeatureStore):
        store = FeatureStore.open(store)
    loaded = store.load(modalities=[])
    frame = loaded.frame
    names = list(store.metadata.label_names)
    label = frame["label"].fillna(-1).astype(int).map(lambda v: names[v] if 0 <= v < len(names) else ("unlabelled" if v == -1 else f"<{v}>"))
    counts: dict[str, dict[str, int]] = {}
    for name in [*names, *sorted(set(label) - set(names))]:
        per_split = {s: int(((label == name) & (frame["split"] == s)).sum()) for s in SPLITS}
        if any(per_split.values()) or name in names:
            counts[name] = per_split
    return StoreSummary(
        root=str(store.root),
        model=store.metadata.model,
        source=store.metadata.source,
        created=store.metadata.created,
        fingerprint=store.fingerprint(),
        dims=dict(store.metadata.dims),
        rows=len(frame),
        dialogues={s: int(frame.loc[frame["split"] == s, "dialog_id"].nunique()) for s in SPLITS},
        utterances={s: int((frame["split"] == s).sum()) for s in SPLITS},
        label_counts=counts,
        failures=len(store.load_failures()),
        duplicates=loaded.duplicates,
    )
