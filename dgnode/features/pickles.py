"""Import the standard MERC feature pickles (MMGCN/DialogueRNN, COSMIC) into a feature store.

The file is read with :func:`~dgnode.features.restricted_pickle.restricted_load` (nothing in it
runs), checked against its format (:mod:`dgnode.features.pickle_formats`), read into dialogues
(:mod:`dgnode.features.pickle_dialogues`: speakers, labels, splits, a deterministic valid carve
when the file has none) and appended to the store. Label names come from
``dgnode/data/<dataset>_structure.json``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dgnode.corpus.splits import SPLITS
from dgnode.errors import InputError
from dgnode.features.pickle_dialogues import read_dialogues
from dgnode.features.pickle_formats import DATASETS, FORMATS, CosmicText, Dataset, PickleFormat, label_names_for, unpack
from dgnode.features.restricted_pickle import restricted_load
from dgnode.features.store import MODALITIES, FeatureStore, StoreMetadata

__all__ = ["ImportReport", "import_pickle"]


@dataclass
class ImportReport:
    """What an import wrote; ``skipped_dialogues`` were in the file but in no split."""

    path: str
    format: str
    dataset: str
    store: str
    dims: dict[str, int]
    dialogues: dict[str, int]
    utterances: dict[str, int]
    rows_written: int
    skipped_dialogues: list[str] = field(default_factory=list)
    carved_valid: list[str] = field(default_factory=list)
    label_counts: dict[str, int] = field(default_factory=dict)
    valid_rule: str = "file"  # where valid came from: the file, the dataset's standard dialogues, a hash carve

    def table_rows(self) -> list[tuple[str, str]]:
        """``(what, value)`` lines for a summary table."""
        skipped = self.skipped_dialogues
        return [
            ("file", self.path),
            ("format / dataset", f"{self.format} / {self.dataset}"),
            ("dims", ", ".join(f"{m} {d}" for m, d in self.dims.items())),
            *((split, f"{self.dialogues[split]} dialogues, {self.utterances[split]} utterances") for split in self.dialogues),
            ("rows written", f"{self.rows_written} (rows already stored are skipped)"),
            ("valid split", self._valid_text()),
            ("skipped (in no split)", f"{len(skipped)}" + (f": {', '.join(skipped[:10])}" if skipped else "")),
            ("labels", ", ".join(f"{name} {count}" for name, count in self.label_counts.items())),
        ]


    def _valid_text(self) -> str:
        if self.valid_rule == "standard":
            return (f"the standard {self.dataset} validation dialogues ({len(self.carved_valid)}, from "
                    f"dgnode/data/{self.dataset}_structure.json), taken out of the file's train list")
        if self.valid_rule == "hash":
            return "carved from train by sha256: " + ", ".join(self.carved_valid)
        return "the file's own"


def import_pickle(
    path: str | Path,
    fmt: PickleFormat,
    store_path: str | Path,
    dataset: Dataset | None = None,
    text_from: CosmicText = "roberta1",
) -> ImportReport:
    """Read a standard feature pickle with :func:`restricted_load` and append it to a store.

    ``dataset`` (``iemocap``/``meld``) is inferred from the dialogue ids when omitted. Re-running
    writes nothing new (rows already stored are skipped). Raises :class:`InputError` naming the
    file, and the dialogue where one is at fault, for anything malformed.
    """
    import pandas as pd

    path = Path(path)
    if fmt not in FORMATS:
        raise InputError(f"unknown pickle format {fmt!r}; expected one of {list(FORMATS)}", path=str(path))
    if dataset is not None and dataset not in DATASETS:
        raise InputError(f"unknown dataset {dataset!r}; expected one of {list(DATASETS)}")
    obj = restricted_load(path)
    found = read_dialogues(path, unpack(path, fmt, obj, dataset, text_from))
    dataset, dialogues, skipped, carved = found.dataset, found.dialogues, found.skipped, found.carved_valid
    if not dialogues:
        raise InputError("the pickle's split lists name no dialogues", path=str(path))
    modalities = [m for m in MODALITIES if m in dialogues[0].features]
    dims = {m: int(dialogues[0].features[m].shape[1]) for m in modalities}
    label_names = label_names_for(dataset)
    preprocessing: dict[str, Any] = {"format": fmt, "dataset": dataset}
    if found.valid_rule == "standard":
        preprocessing["valid_standard"] = {
            "rule": f"the valid split of dgnode/data/{dataset}_structure.json, found in the file's training list",
            "dialogues": carved,
        }
    elif carved:
        preprocessing["valid_carve"] = {
            "rule": "floor(0.1 * n_train + 0.5) training dialogues with the smallest sha256(dialog_id)",
            "dialogues": carved,
        }
    if fmt == "cosmic":
        preprocessing["text_from"] = text_from
    metadata = StoreMetadata(
        model={"mmgcn": "mmgcn-features", "cosmic": "cosmic-roberta"}[fmt],
        dims=dims,
        label_names=label_names,
        source=f"{fmt}-pickle",
        preprocessing=preprocessing,
        extra={"pickle": path.name, "pickle_sha256": _sha256(path), "dataset": dataset},
    )
    store = FeatureStore.create(store_path, metadata)
    frame = pd.DataFrame(
        {
            "dialog_id": [d.dialog_id for d in dialogues for _ in d.labels],
            "utt_id": [u for d in dialogues for u in d.utt_ids],
            "order": [i for d in dialogues for i in range(len(d.labels))],
            "speaker": [s for d in dialogues for s in d.speakers],
            "label": pd.array([v for d in dialogues for v in d.labels], dtype="Int32"),
            "split": [d.split for d in dialogues for _ in d.labels],
            **{m: list(np.concatenate([d.features[m] for d in dialogues])) for m in modalities},
        }
    )
    written = store.append(frame)
    label_counts = Counter(label_names[v] if v is not None else "unlabelled" for d in dialogues for v in d.labels)
    return ImportReport(
        path=str(path),
        format=fmt,
        dataset=dataset,
        store=str(store.root),
        dims=dims,
        dialogues={s: sum(d.split == s for d in dialogues) for s in SPLITS},
        utterances={s: sum(len(d.labels) for d in dialogues if d.split == s) for s in SPLITS},
        rows_written=written,
        skipped_dialogues=skipped,
        carved_valid=carved,
        valid_rule=found.valid_rule,
        label_counts={name: label_counts[name] for name in [*label_names, "unlabelled"] if label_counts[name]},
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
