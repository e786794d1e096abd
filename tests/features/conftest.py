"""Fixtures for the features stage: tiny hand-built feature stores with known values, on the local
disk or, where a test parametrises ``store_kind`` with ``"s3"``, in the test S3 server."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from dgnode.features.store import FeatureStore, StoreMetadata
from dgnode.storage import Location, resolve


def build_rows(dialogues: list[dict], dims: dict[str, int]) -> pd.DataFrame:
    """Rows for ``dialogues`` ({dialog_id, split, speakers, labels, [orders]}); vector values are
    ``base + j`` where ``base = 1000 * global_row + 100 * modality_index``, so every number is known."""
    records = []
    row = 0
    for dialogue in dialogues:
        n = len(dialogue["speakers"])
        orders = dialogue.get("orders", list(range(n)))
        for i in range(n):
            record = {
                "dialog_id": dialogue["dialog_id"],
                "utt_id": f"{dialogue['dialog_id']}_u{orders[i]:03d}_{i}",
                "order": orders[i],
                "speaker": dialogue["speakers"][i],
                "label": dialogue["labels"][i],
                "split": dialogue["split"],
            }
            for k, (modality, dim) in enumerate(dims.items()):
                record[modality] = np.arange(dim, dtype=np.float32) + 1000 * row + 100 * k
            records.append(record)
            row += 1
    return pd.DataFrame.from_records(records)


@pytest.fixture
def store_kind() -> str:
    """Where stores are made: ``local`` unless a test parametrises it (``["local", "s3"]``)."""
    return "local"


@pytest.fixture
def store_base(store_kind: str, tmp_path: Path, request) -> Location:
    """A fresh folder (or ``s3://`` prefix in a fresh bucket) to make stores in."""
    if store_kind == "s3":
        return resolve(request.getfixturevalue("s3_uri"))
    return resolve(tmp_path)


@pytest.fixture
def make_store(store_base: Location) -> Callable[..., FeatureStore]:
    """``make_store(dialogues, dims={"text": 4, "audio": 3}, label_names=[...])`` -> a written store."""
    counter = iter(range(1000))

    def make(dialogues: list[dict], dims: dict[str, int] | None = None, label_names: list[str] | None = None) -> FeatureStore:
        dims = dims or {"text": 4, "audio": 3}
        metadata = StoreMetadata(model="hand-built", dims=dims, label_names=label_names or ["a", "b", "c"], source="test")
        store = FeatureStore.create(store_base / f"store{next(counter)}", metadata)
        store.append(build_rows(dialogues, dims))
        return store

    return make
