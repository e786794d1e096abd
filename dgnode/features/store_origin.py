"""Refuse to top up a store with rows made from a different source or with different settings.

:meth:`FeatureStore.create` compares model, dims, label names and checkpoint; importers and the
synthesiser also record their input file and parameters, and re-running one of them with a
different file or seed must not silently keep the old rows (their ids already exist) under
metadata that no longer says how they were made.
"""

from __future__ import annotations

from pathlib import Path

from dgnode.errors import InputError
from dgnode.features.store import METADATA_FILE, FeatureStore, StoreMetadata


def ensure_same_origin(store_path: str | Path, metadata: StoreMetadata, extra_keys: tuple[str, ...]) -> None:
    """Raise :class:`InputError` when an existing store at ``store_path`` was made differently."""
    if not (Path(store_path) / METADATA_FILE).exists():
        return
    existing = FeatureStore.open(store_path).metadata
    problems = []
    if existing.source != metadata.source:
        problems.append(f"source: store has {existing.source!r}, new rows have {metadata.source!r}")
    if existing.preprocessing != metadata.preprocessing:
        changed = sorted(k for k in {*existing.preprocessing, *metadata.preprocessing}
                         if existing.preprocessing.get(k) != metadata.preprocessing.get(k))
        problems.append(
            "settings differ: " + ", ".join(
                f"{k} (store {existing.preprocessing.get(k)!r}, now {metadata.preprocessing.get(k)!r})" for k in changed
            )
        )
    for key in extra_keys:
        if existing.extra.get(key) != metadata.extra.get(key):
            problems.append(f"{key}: store has {existing.extra.get(key)!r}, new rows have {metadata.extra.get(key)!r}")
    if problems:
        raise InputError(
            "existing feature store was made differently; use a new --store or remove it: " + "; ".join(problems),
            path=str(Path(store_path) / METADATA_FILE),
        )
