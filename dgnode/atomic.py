"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Each write goes to a uniquely named sibling (``.NAME.<random>.tmp``, so concurrent writers never
share a temporary) and is renamed over the target with :func:`os.replace`, which is atomic on
POSIX file systems.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path
from typing import Any, Callable

__all__ = ["atomic_write", "json_text", "write_bytes", "write_json", "write_text"]


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary_path)``, then rename the temporary over ``path``; a failed write
    leaves ``path`` as it was and no temporary behind. Creates the parent directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return path


def write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, data: Any, indent: int | None = 2) -> Path:
    """JSON with NaN/inf written as null (strict JSON readers reject them); other objects as ``str``."""
    return write_text(path, json_text(data, indent=indent))


def json_text(data: Any, indent: int | None = 2) -> str:
    """The JSON text :func:`write_json` writes (NaN/inf as null, other objects as ``str``)."""
    return json.dumps(_finite(data), indent=indent, default=str)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
