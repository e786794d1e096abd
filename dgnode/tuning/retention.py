"""Which trial checkpoints a search in S3 keeps: never one that the saved experiment state may name.

Ray Tune saves its experiment state (each trial's status and latest checkpoint, what
``Tuner.restore`` reads) in the driver's staging directory and uploads it to the search's storage
in the background: every snapshot period, and after a trial has written ``num_to_keep``
checkpoints. Its own ``CheckpointConfig(num_to_keep=K)`` deletes a trial's oldest checkpoint the
moment the K+1-th is registered, which is exactly when that snapshot is only just being uploaded.
A driver killed in that window leaves a saved state naming a deleted checkpoint, and the resumed
trial fails ("Could not recover from checkpoint as it does not exist on storage anymore"). On a
local disk the upload takes milliseconds and a search keeps Tune's scheme (``num_to_keep=2``,
whose forced snapshots keep the saved state close to the ledger); to S3 it is long enough to hit
(tests/tuning/test_search_s3.py did, with epochs of a fraction of a second).

So a search in S3 lets Tune keep every checkpoint and :class:`CheckpointRetention` (a driver
callback) deletes a trial's checkpoint only once a newer checkpoint of that trial was registered
more than :func:`retention_lag_s` ago: three snapshot periods (:data:`SNAPSHOT_PERIOD_S`, a fixed
period instead of Tune's adaptive one of 10 s and more, so the lag is known and the saved state
is at most a few seconds old), by when a snapshot taken after the newer one has been saved,
unless an upload took longer than two periods (Tune warns about slow uploads). A trial thus holds
its checkpoints of the last ``retention_lag_s`` seconds and its latest one; :func:`prune_finished`
keeps only the latest of each trial once the whole search has ended (Tune then waits for its
final snapshot). Each snapshot is a handful of small PUTs: about 0.1 million a day while a search
runs.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from ray.tune import Callback

__all__ = ["CheckpointRetention", "SNAPSHOT_PERIOD_S", "prune_finished", "retention_lag_s", "use_fixed_snapshot_period"]

SNAPSHOT_PERIOD_S = 5.0
_PERIOD_VARIABLE = "TUNE_GLOBAL_CHECKPOINT_S"  # read by Tune's controller when it is built
_CHECKPOINT_DIR = re.compile(r"^checkpoint_\d+$")


def use_fixed_snapshot_period() -> None:
    """Make Tune snapshot every :data:`SNAPSHOT_PERIOD_S` (unless the user set a period); call
    before the tuner is built."""
    os.environ.setdefault(_PERIOD_VARIABLE, str(SNAPSHOT_PERIOD_S))


def retention_lag_s() -> float:
    """How long a superseded checkpoint is kept: three snapshot periods."""
    try:
        period = float(os.environ.get(_PERIOD_VARIABLE, SNAPSHOT_PERIOD_S))
    except ValueError:  # "auto": Tune adapts it from 10 s upwards, by its own measure
        period = 10.0
    return 3.0 * max(period, 1.0)


class CheckpointRetention(Callback):
    """Deletes superseded trial checkpoints once no saved experiment state can name them (see the
    module docstring). Pickled with the experiment state: it keeps paths, their filesystem and
    wall-clock registration times only; a resumed search goes on pruning what it recorded."""

    def __init__(self) -> None:
        self.kept: dict[str, list[tuple[Any, str, float]]] = {}  # trial id -> [(filesystem, path, registered)]

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        now = time.time()
        self.kept.setdefault(trial.trial_id, []).append((checkpoint.filesystem, checkpoint.path, now))
        self.prune(now)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self.prune()

    def prune(self, now: float | None = None) -> int:
        """Delete what may go now; returns how many checkpoints were deleted."""
        now = time.time() if now is None else now
        lag, deleted = retention_lag_s(), 0
        for entries in self.kept.values():
            # entries[0] may go once its successor, entries[1], is older than the lag.
            while len(entries) > 1 and now - entries[1][2] > lag:
                filesystem, path, _ = entries[0]
                if not _delete_dir(filesystem, path):
                    break  # try again at the next step; a failed delete costs space, never a resume
                entries.pop(0)
                deleted += 1
        return deleted


def prune_finished(results: Any) -> int:
    """After a search has ended: keep only each trial's latest checkpoint (what the final test
    and any later look read); returns how many checkpoints were deleted."""
    import pyarrow.fs as pafs

    deleted = 0
    for result in results:
        latest = result.checkpoint
        if latest is None:
            continue
        filesystem = latest.filesystem
        trial_dir = latest.path.rstrip("/").rsplit("/", 1)[0]
        for info in filesystem.get_file_info(pafs.FileSelector(trial_dir, allow_not_found=True)):
            if (info.type == pafs.FileType.Directory and _CHECKPOINT_DIR.match(info.base_name)
                    and info.path.rstrip("/") != latest.path.rstrip("/")):
                deleted += _delete_dir(filesystem, info.path)
    return deleted


def _delete_dir(filesystem: Any, path: str) -> bool:
    try:
        filesystem.delete_dir(path)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True
