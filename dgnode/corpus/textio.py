"""Tolerant reading of the corpus' text files.

Encodings and line endings of the release are not verified, so each line is decoded on its own:
UTF-8 first, then cp1252 (a superset of the printable Latin-1 range that old editors wrote),
then Latin-1, which decodes any byte. ``\\r`` is stripped, so CRLF and LF files read the same.
A file is *unusable* only when it is binary: a NUL byte in its first 8 KiB. A single line is
unusable when it holds control characters other than tab after decoding.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dgnode.errors import InputError

__all__ = ["DecodedLines", "decode_line", "decode_lines", "has_control_characters", "read_json", "read_lines"]

_BINARY_PROBE_BYTES = 8192
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass
class DecodedLines:
    """Lines of a text file (1-based numbering is ``index + 1``) and how they were decoded."""

    path: str | Path  # a local path or an s3:// URI
    lines: list[str]
    binary: bool = False
    fallback_lines: int = 0  # lines that were not valid UTF-8


def decode_line(raw: bytes) -> tuple[str, bool]:
    """Decode one line; returns (text, used_fallback)."""
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252"), True
    except UnicodeDecodeError:
        return raw.decode("latin-1"), True


def read_lines(path: str | Path) -> DecodedLines:
    """Read ``path`` as text lines with ``\\r`` stripped; ``binary=True`` when it is not text."""
    return decode_lines(Path(path).read_bytes(), Path(path))


def decode_lines(data: bytes, path: str | Path) -> DecodedLines:
    """The text lines of ``data`` read from ``path`` (see :func:`read_lines`)."""
    if b"\x00" in data[:_BINARY_PROBE_BYTES]:
        return DecodedLines(path=path, lines=[], binary=True)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        # Fast path: the whole file is UTF-8 (nearly always).
        lines = data.decode("utf-8").split("\n")
        lines = [line.rstrip("\r") for line in lines]
        fallback = 0
    except UnicodeDecodeError:
        lines, fallback = [], 0
        for raw in data.split(b"\n"):
            text, used_fallback = decode_line(raw.rstrip(b"\r"))
            fallback += used_fallback
            lines.append(text)
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    return DecodedLines(path=path, lines=lines, fallback_lines=fallback)


def has_control_characters(text: str) -> bool:
    """True when ``text`` holds control characters (other than tab): garbage, not words."""
    return _CONTROL_RE.search(text) is not None


def read_json(path: str | Path) -> Any:
    """A JSON file's value (a structure file); a missing or malformed file is one
    :class:`~dgnode.errors.InputError` naming it (and the line)."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("structure file not found", str(path)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        line = getattr(error, "lineno", None)
        raise InputError(f"not valid JSON: {getattr(error, 'msg', error)}", str(path), line) from None
