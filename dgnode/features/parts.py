"""A feature store's Parquet parts as files or objects: names, whole writes, footers, many reads at once.

A part is written once, whole, under its final name (:meth:`~dgnode.storage.Location.write_with`:
locally a temporary renamed into place, on S3 one PUT of the whole object), so a listing shows
complete parts only. Parts of object storage are read concurrently (a request costs latency, not
CPU); local parts one after the other.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from dgnode.storage import Location

__all__ = ["PART_PATTERN", "map_parts", "part_name", "part_rows", "read_part", "write_part"]

PART_PATTERN = "part-*.parquet"
# Concurrent requests when reading many parts of an object store.
_REMOTE_READERS = 8

T = TypeVar("T")


def part_name() -> str:
    """A new part's name: sorts by creation time, unique across writers (random suffix)."""
    return f"part-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:12]}.parquet"


def write_part(table: pa.Table, location: Location) -> None:
    """Write ``table`` as one complete part at ``location`` (atomic on both kinds)."""
    location.write_with(lambda sink: pq.write_table(table, sink))


def read_part(location: Location, columns: Sequence[str] | None = None) -> pa.Table:
    with location.open_input() as handle:
        return pq.read_table(handle, columns=list(columns) if columns is not None else None)


def part_rows(location: Location) -> int:
    """Rows of a part, from its footer."""
    with location.open_input() as handle:
        return pq.read_metadata(handle).num_rows


def map_parts(function: Callable[[Location], T], parts: Sequence[Location]) -> list[T]:
    """``[function(p) for p in parts]``, in order; concurrent when the parts are remote."""
    if len(parts) < 2 or not parts[0].is_remote:
        return [function(part) for part in parts]
    with ThreadPoolExecutor(max_workers=min(_REMOTE_READERS, len(parts))) as pool:
        return list(pool.map(function, parts))
