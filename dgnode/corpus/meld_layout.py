"""Where a MELD release keeps its CSVs and clips, and unpacking the clip archives.

:func:`find_release` looks under the root at any depth (never inside ``__MACOSX`` or
dot-folders, junk counted as in IEMOCAP; clip folders are not descended into) for the three CSVs,
the three clip folders and the three archives (:mod:`dgnode.corpus.meld_names`); the first found
by breadth-first order wins and a second is a ``duplicate-source`` reject. Per split the clips
come from the unpacked folder when there is one (an archive beside it is then a
``archive-already-unpacked`` skip), else from the archive, unpacked by :func:`unpack_archive`
into ``UNPACK/<split>/`` (the scan's output folder: the release itself is never written to).
A split with a CSV but neither is one ``missing-folder`` reject: its utterances are kept without
video.

Unpacking reads the ``.tar.gz`` once, member by member: regular files and folders only, never a
path that is absolute or climbs out with ``..`` nor a link or device (``unsafe-archive-member``),
macOS junk members not written (``macos-junk``: one row per sidecar, one per archive for all of
``__MACOSX/``). It goes to a temporary folder renamed into place when complete, with a stamp of
the archive's size and modification time: a second scan reuses it, an interrupted one leaves no
half folder that would count as unpacked; the members it left out are recorded there and reported
again by every later scan. A broken archive is one ``unreadable`` reject.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import zlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from dgnode.corpus import rejects as R
from dgnode.corpus.meld_names import ARCHIVES, CLIP_FOLDERS, CSV_FILES, MELD_SPLITS
from dgnode.corpus.names import MACOSX_DIR, is_macos_junk_name
from dgnode.corpus.rejects import RejectLog
from dgnode.corpus.scan import list_entries
from dgnode.corpus.tree import LocalTree
from dgnode.errors import EnvironmentFault

__all__ = ["UNPACKED_STAMP", "MeldRelease", "find_release", "unpack_archive"]

UNPACKED_STAMP = ".{name}-unpacked.json"  # beside the unpacked folder, never inside it among the clips
_KINDS = {"csv": CSV_FILES, "folder": CLIP_FOLDERS, "archive": ARCHIVES}


@dataclass
class MeldRelease:
    """The sources a scan reads: per MELD split, its CSV and the folder holding its clips."""

    root: Path
    csvs: dict[str, Path] = field(default_factory=dict)
    clip_dirs: dict[str, Path] = field(default_factory=dict)
    archives: dict[str, Path] = field(default_factory=dict)  # the archives that were unpacked

    @property
    def found_anything(self) -> bool:
        return bool(self.csvs or self.clip_dirs or self.archives)


def _find_sources(root: Path, log: RejectLog) -> dict[str, dict[str, Path]]:
    found: dict[str, dict[str, Path]] = {kind: {} for kind in _KINDS}
    by_name = {name: (kind, split) for kind, names in _KINDS.items() for split, name in names.items()}
    visited = {os.path.realpath(root)}
    tree = LocalTree(str(root))
    queue = deque([root])
    while queue:
        directory = queue.popleft()
        for entry in list_entries(tree, str(directory), log):
            is_dir = entry.is_dir
            kind, split = by_name.get(entry.name, (None, None))
            if kind is not None and is_dir == (kind == "folder"):
                if split in found[kind]:
                    log.add(R.DUPLICATE_SOURCE, entry.path, f"the {split} {kind} was already found at "
                            f"{found[kind][split]}; this one is not read")
                else:
                    found[kind][split] = Path(entry.path)
                continue
            real = os.path.realpath(entry.path)
            if is_dir and real not in visited:
                visited.add(real)
                queue.append(Path(entry.path))
    return found


def find_release(root: Path, log: RejectLog, unpack_dir: Path | None, progress: bool | None = False) -> MeldRelease:
    """The CSVs and clip folders of the release under ``root``, archives unpacked into ``unpack_dir``
    (see the module docstring); ``unpack_dir=None`` leaves archives packed (their split has no clips)."""
    found = _find_sources(root, log)
    release = MeldRelease(root, csvs=dict(found["csv"]))
    for split in MELD_SPLITS:
        folder, archive = found["folder"].get(split), found["archive"].get(split)
        if folder is not None:
            release.clip_dirs[split] = folder
            if archive is not None:
                log.add(R.ARCHIVE_UNPACKED, archive, f"its clips are read from {folder}")
        elif archive is not None and unpack_dir is not None:
            unpacked = unpack_archive(archive, unpack_dir / split, log, progress)
            if unpacked is not None:
                release.clip_dirs[split] = _clip_folder(unpacked, split)
                release.archives[split] = archive
        elif split in release.csvs:  # a split with no CSV either is reported once, by the scan
            where = f"archive {archive} not unpacked (no folder to unpack into)" if archive else (
                f"no {CLIP_FOLDERS[split]}/ folder and no {ARCHIVES[split]}")
            log.add(R.MISSING_FOLDER, root, f"{split} clips: {where}; the split's utterances are kept without video")
    return release


def _clip_folder(unpacked: Path, split: str) -> Path:
    """The folder of clips inside an unpacked archive: its ``train_splits/``-style folder when it
    has one (at any depth), else the unpacked folder itself."""
    for path in sorted(unpacked.rglob(CLIP_FOLDERS[split])):
        if path.is_dir() and MACOSX_DIR not in path.parts:
            return path
    return unpacked


def _stamp(archive: Path) -> dict:
    stat = archive.stat()
    return {"archive": archive.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def unpack_archive(archive: Path, dest: Path, log: RejectLog, progress: bool | None = False) -> Path | None:
    """Unpack ``archive`` into ``dest`` (see the module docstring); ``None`` when it is unreadable."""
    stamp_path = dest.parent / UNPACKED_STAMP.format(name=dest.name)
    if stamp_path.is_file() and dest.is_dir():
        try:
            stamp = json.loads(stamp_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stamp = {}
        if stamp.get("archive_stamp") == _stamp(archive):
            for row in stamp.get("rejects", []):  # what unpacking left out, reported by every scan alike
                log.add(row["reason"], row["path"], row["detail"])
            return dest
    temporary = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        for stale in dest.parent.glob(f".{dest.name}.partial-*"):  # left by an interrupted scan
            shutil.rmtree(stale, ignore_errors=True)
        temporary.mkdir()
        logged = len(log.rows)
        _extract(archive, temporary, log, progress)
        left_out = [{"reason": r.reason, "path": r.path, "detail": r.detail} for r in log.rows[logged:]]
        stamp_path.unlink(missing_ok=True)
        if dest.exists():
            shutil.rmtree(dest)  # an unpacked copy of an older archive (its stamp differs)
        temporary.rename(dest)
        # Written last: a scan stopped before this line unpacks again rather than trust a partial folder.
        stamp_path.write_text(json.dumps({"archive_stamp": _stamp(archive), "rejects": left_out}), encoding="utf-8")
    except (tarfile.TarError, EOFError, zlib.error) as error:
        shutil.rmtree(temporary, ignore_errors=True)
        log.add(R.UNREADABLE, archive, f"not a readable .tar.gz ({error}); the split's utterances are kept without video")
        return None
    except OSError as error:
        shutil.rmtree(temporary, ignore_errors=True)
        raise EnvironmentFault(f"cannot unpack {archive.name} here ({error.strerror or error}): free space or pass "
                               "another --unpack_dir", path=str(dest)) from None
    return dest


def _extract(archive: Path, dest: Path, log: RejectLog, progress: bool | None) -> None:
    from tqdm import tqdm

    macosx_files = 0
    with tarfile.open(archive, "r:gz") as tar, tqdm(desc=f"unpack {archive.name}", unit="file",
                                                    disable=None if progress is None else not progress) as bar:
        for member in tar:
            parts = PurePosixPath(member.name).parts
            where = f"{archive}!{member.name}"
            if MACOSX_DIR in parts:
                macosx_files += member.isfile()
                continue
            if member.name.startswith("/") or ".." in parts or not parts:
                log.add(R.UNSAFE_ARCHIVE_MEMBER, where, "absolute or climbing path; not unpacked")
                continue
            if any(p.startswith(".") for p in parts):
                log.add(R.MACOS_JUNK if is_macos_junk_name(parts[-1]) else R.HIDDEN_ENTRY, where,
                        "macOS metadata file not unpacked" if is_macos_junk_name(parts[-1]) else "hidden entry not unpacked")
                continue
            target = dest.joinpath(*parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                with source, target.open("wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
                bar.update(1)
            else:
                log.add(R.UNSAFE_ARCHIVE_MEMBER, where, "a link or special file; not unpacked")
    if macosx_files:
        log.add(R.MACOS_JUNK, f"{archive}!{MACOSX_DIR}/", f"macOS archive metadata folder ({macosx_files} files) not unpacked")
