"""Which release a folder holds, and the scan of either: the entry point of ``dgnode corpus scan``.

:func:`detect_dataset` looks breadth-first under the root (at most :data:`DETECT_DEPTH` levels,
never inside ``__MACOSX`` or dot-folders) for the marks of a release: a ``Session1``..``Session5``
folder (IEMOCAP), a MELD CSV, clip folder or clip archive (:mod:`dgnode.corpus.meld_names`).
A root with marks of both, or of neither, is an :class:`~dgnode.errors.InputError` asking for
``--dataset``. :func:`scan_release` then runs :func:`dgnode.corpus.scan.scan_corpus` (IEMOCAP) or
:func:`dgnode.corpus.meld_scan.scan_meld` (MELD), with the dataset's default label scheme
unless one is named.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path
from typing import Literal

from dgnode.corpus.labels import scheme_for
from dgnode.corpus.meld_names import ARCHIVES, CLIP_FOLDERS, CSV_FILES
from dgnode.corpus.names import SESSION_DIR_RE, is_hidden_or_junk
from dgnode.corpus.scan import ScanResult
from dgnode.errors import InputError

__all__ = ["DATASETS", "DETECT_DEPTH", "DatasetChoice", "detect_dataset", "scan_release"]

DATASETS = ("iemocap", "meld")
DatasetChoice = Literal["auto", "iemocap", "meld"]
DETECT_DEPTH = 4
_MELD_MARKS = frozenset({*CSV_FILES.values(), *CLIP_FOLDERS.values(), *ARCHIVES.values()})


def detect_dataset(root: str | Path) -> str:
    """``iemocap`` or ``meld``: the release under ``root`` (see the module docstring). An
    ``s3://`` root is IEMOCAP: only its reader lists object storage."""
    if str(root).startswith("s3://"):
        return "iemocap"
    root = Path(root)
    if not root.is_dir():
        raise InputError("corpus root is not a directory", str(root))
    found: dict[str, str] = {}
    queue = deque([(root, 0)])
    while queue and len(found) < 2:
        directory, depth = queue.popleft()
        if SESSION_DIR_RE.match(directory.name):
            found.setdefault("iemocap", str(directory))
            continue
        try:
            with os.scandir(directory) as iterator:
                entries = sorted(iterator, key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if is_hidden_or_junk(entry.name):
                continue
            if entry.name in _MELD_MARKS:
                found.setdefault("meld", entry.path)
            elif depth < DETECT_DEPTH and entry.is_dir(follow_symlinks=False):
                queue.append((Path(entry.path), depth + 1))
    if len(found) == 2:
        raise InputError(f"holds both an IEMOCAP release ({found['iemocap']}) and a MELD one ({found['meld']}); "
                         "pass --dataset iemocap or --dataset meld", str(root))
    if not found:
        raise InputError(f"no IEMOCAP Session1..5 folder and no MELD {'/'.join(CSV_FILES.values())} found within "
                         f"{DETECT_DEPTH} levels; pass --dataset iemocap or --dataset meld", str(root))
    return next(iter(found))


def scan_release(
    root: str | Path,
    dataset: DatasetChoice = "auto",
    labels: str | None = None,
    strict: bool = False,
    progress: bool | None = False,
    unpack_dir: str | Path | None = None,
    max_utterance_s: float | None = None,
) -> ScanResult:
    """Scan ``root`` as ``dataset`` (``auto``: :func:`detect_dataset`); ``labels`` defaults to the
    dataset's scheme (``merc6``, ``meld7``). ``unpack_dir`` and ``max_utterance_s`` are MELD's
    (:func:`~dgnode.corpus.meld_scan.scan_meld`)."""
    if dataset not in ("auto", *DATASETS):
        raise InputError(f"unknown dataset {dataset!r}; expected auto, {' or '.join(DATASETS)}")
    if dataset == "auto":
        dataset = detect_dataset(root)
    scheme = scheme_for(dataset, labels)
    if dataset == "meld":
        if str(root).startswith("s3://"):
            raise InputError("a MELD release is read from a local folder (its clip archives are unpacked "
                             "first); copy it to local disk, or scan IEMOCAP from object storage", str(root))
        from dgnode.corpus.meld_names import MAX_UTTERANCE_S
        from dgnode.corpus.meld_scan import scan_meld

        return scan_meld(root, scheme.name, strict, progress, unpack_dir,
                         MAX_UTTERANCE_S if max_utterance_s is None else max_utterance_s)
    from dgnode.corpus.scan import scan_corpus

    return scan_corpus(root, scheme.name, strict, progress)
