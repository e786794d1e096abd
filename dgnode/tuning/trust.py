"""A search directory must be as trusted as the code before it is resumed.

``Tuner.restore`` (Ray Tune's own resume) unpickles ``OUT/search/tuner.pkl`` and the other
pickles Tune keeps there (trainable, searcher and callback state), and unpickling runs whatever
code the file names. Whoever can write those files, or replace them through a directory they can
write, runs code as the user who resumes.

* A local directory: :func:`refuse_untrusted` refuses one in which a directory or a pickle is
  writable by group or others, or owned by another user (root excepted).
* An ``s3://`` prefix: trust is the bucket's access control. Object stores have no owner or mode
  bits that dgnode could read, and whether someone else may write under the prefix is decided by
  bucket policies and IAM roles the resuming process usually may not even read. So dgnode does not
  check, and a search prefix must be writable only by principals you trust with your code: you and
  the cluster's own instance role (docs/cluster.md, "IAM"); never a bucket or prefix that others
  (another team, a public-write ACL) can write.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from dgnode.errors import InputError

if TYPE_CHECKING:
    from dgnode.storage import Location

__all__ = ["refuse_untrusted"]

_PICKLE_SUFFIXES = (".pkl", ".pickle")


def refuse_untrusted(out: "str | Path | Location") -> None:
    """:class:`InputError` (one line naming the path and the fix) when the local directory ``out``
    is not private to its owner; see the module docstring (an ``s3://`` prefix is trusted through
    its bucket's access control and passes). A directory that does not exist passes (the caller
    reports that)."""
    from dgnode.storage import resolve

    location = resolve(out)
    if location.is_remote:
        return
    out = location.local_path()
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
