"""What a feature store's rows were made by: ``metadata.json`` (:class:`StoreMetadata`, read and
written by :func:`read_metadata`/:func:`write_metadata` on a local or ``s3://`` store) and the
names of the row columns every part holds."""

from __future__ import annotations

import dataclasses
import json
import numbers
import time
from dataclasses import dataclass, field
from typing import Any

from dgnode.corpus.manifest import KEY_COLUMNS
from dgnode.errors import InputError
from dgnode.storage import Location

__all__ = ["IDENTITY_EXTRA_KEYS", "KEY_COLUMNS", "METADATA_FILE", "MODALITIES", "StoreMetadata", "read_metadata",
           "write_metadata"]

MODALITIES = ("text", "audio", "vision")
METADATA_FILE = "metadata.json"
# Inputs that identify what a store's rows were made from (hashes of the structure file or pickle).
IDENTITY_EXTRA_KEYS = ("structure_sha256", "pickle_sha256")


@dataclass
class StoreMetadata:
    """What produced the vectors; stored as ``metadata.json`` beside the parts."""

    model: str
    dims: dict[str, int]
    label_names: list[str]
    checkpoint_sha256: str | None = None
    source: str = "imagebind"
    preprocessing: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.dims, dict):
            raise ValueError(f"dims must be a mapping of modality to length, got {self.dims!r}")
        unknown = sorted(set(self.dims) - set(MODALITIES))
        if unknown:
            raise ValueError(f"unknown modalities {unknown}; expected a subset of {list(MODALITIES)}")
        if not self.dims:
            raise ValueError("a feature store needs at least one modality")
        for name, dim in self.dims.items():
            # A string or float dim ("16", 16.5) would be used as a length somewhere: refuse it here.
            if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim <= 0:
                raise ValueError(f"dims.{name} must be a positive integer, got {dim!r}")
        self.dims = {name: int(dim) for name, dim in self.dims.items()}
        if not isinstance(self.label_names, (list, tuple)) or not all(isinstance(n, str) for n in self.label_names):
            raise ValueError(f"label_names must be a list of strings, got {self.label_names!r}")
        self.label_names = list(self.label_names)

    @property
    def modalities(self) -> list[str]:
        return [m for m in MODALITIES if m in self.dims]

    def compatible_with(self, other: "StoreMetadata") -> list[str]:
        """Differences that forbid mixing rows of ``other`` into a store with this metadata.

        Rows are comparable only when made by the same model, checkpoint, source and
        preprocessing from the same input (``extra`` keys of :data:`IDENTITY_EXTRA_KEYS`):
        re-running with another seed, crop or pickle must not add rows to, or silently keep the
        rows of, a store whose metadata describes another run.
        """
        problems = []
        for name in ("model", "dims", "label_names", "checkpoint_sha256", "source"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                problems.append(f"{name}: store has {mine!r}, new rows have {theirs!r}")
        changed = sorted(
            k for k in {*self.preprocessing, *other.preprocessing} if self.preprocessing.get(k) != other.preprocessing.get(k)
        )
        if changed:
            problems.append(
                "settings differ: "
                + ", ".join(f"{k} (store {self.preprocessing.get(k)!r}, now {other.preprocessing.get(k)!r})" for k in changed)
            )
        for key in IDENTITY_EXTRA_KEYS:
            if self.extra.get(key) != other.extra.get(key):
                problems.append(f"{key}: store has {self.extra.get(key)!r}, new rows have {other.extra.get(key)!r}")
        return problems


def read_metadata(root: Location) -> StoreMetadata:
    """The metadata of the store at ``root``; :class:`InputError` naming ``root`` when there is no
    store there, naming the file when it cannot be read as store metadata."""
    location = root / METADATA_FILE
    try:
        raw = location.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        raise InputError(f"not a feature store: {METADATA_FILE} is missing (a store is a folder with {METADATA_FILE} "
                         "and part-*.parquet files, written by dgnode extract or dgnode features import|synth)",
                         path=root.uri) from None
    try:
        return StoreMetadata(**json.loads(raw.decode("utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError) as error:
        raise InputError(f"unreadable store metadata ({error})", path=location.uri) from None


def write_metadata(root: Location, metadata: StoreMetadata) -> None:
    (root / METADATA_FILE).write_text(json.dumps(dataclasses.asdict(metadata), indent=2))
