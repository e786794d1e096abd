"""Errors that the CLI turns into one clear line instead of a traceback.

Two kinds, told apart by the exit code the CLI gives them (``exit_code``):

* :class:`InputError` (exit 2): the user's input is wrong (a corpus file, a pickle, a feature
  store, a config); fixing the input fixes the run;
* :class:`EnvironmentFault` (exit 1): the machine is: a full disk, a read-only store, a store
  locked by another writer; the same command succeeds once that is fixed, and nothing already
  produced was lost.
"""

from __future__ import annotations

__all__ = ["DgnodeError", "EnvironmentFault", "InputError"]


class DgnodeError(Exception):
    """Base class: the message says what was wrong and where (file, line) and what was expected."""

    exit_code = 2

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")
        self.reason = message


class InputError(DgnodeError):
    """Malformed user input: a corpus file, a pickle, a feature store, a config."""


class EnvironmentFault(DgnodeError):
    """The environment failed, not the input (no space, read-only, locked): exit code 1, and
    the message says what to fix before re-running the same command."""

    exit_code = 1
