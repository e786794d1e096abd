"""A search directory must be as trusted as the code before it is resumed.

``Tuner.restore`` (Ray Tune's own resume) unpickles ``OUT/search/tuner.pkl`` and the other
pickles Tune keeps there (trainable, searcher and callback state), and unpickling runs whatever
code the file names. Whoever can write those files, or replace them through a directory they can
write, runs code as the user who resumes. :func:`refuse_untrusted` therefore refuses a search
directory in which a directory or a pickle is writable by group or others, or owned by another
user (root excepted).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from dgnode.errors import InputError

__all__ = ["refuse_untrusted"]

_PICKLE_SUFFIXES = (".pkl", ".pickle")


def refuse_untrusted(out: str | Path) -> None:
    """:class:`InputError` (one line naming the path and the fix) when ``out`` is not private
    to its owner; see the module docstring. A directory that does not exist passes (the
    caller reports that)."""
    out = Path(out)
    if not out.is_dir():
        return
    for path in _guarded_paths(out):
        info = path.stat()
        writers = [who for who, bit in (("group", stat.S_IWGRP), ("others", stat.S_IWOTH)) if info.st_mode & bit]
        foreign = info.st_uid not in (os.getuid(), 0)
        if writers or foreign:
            why = f"writable by {' and '.join(writers)}" if writers else f"owned by user id {info.st_uid}"
            raise InputError(
                f"refusing to resume from {out}: {path} is {why}, and resuming unpickles the search state kept there "
                f"(code execution for whoever can change it); make it yours alone (chmod -R go-w {out}) or start a "
                "new search")


def _guarded_paths(out: Path):
    yield out
    for root, directories, files in os.walk(out):
        for name in directories:
            yield Path(root, name)
        for name in files:
            if name.endswith(_PICKLE_SUFFIXES):
                yield Path(root, name)
