"""Errors that the CLI turns into one clear line instead of a traceback."""

from __future__ import annotations


class DgnodeError(Exception):
    """Base class: the message says what was wrong and where (file, line) and what was expected."""


class InputError(DgnodeError):
    """Malformed user input: a corpus file, a pickle, a feature store, a config."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")
        self.reason = message
