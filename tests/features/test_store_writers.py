"""Writers of one store: the lock (concurrent writers store each utterance once, locally and in S3;
stale locks are broken, live ones waited for), provenance committed with its rows, disk faults as
one line. The S3 side of the lock: tests/features/test_lock_s3.py."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dgnode.errors import EnvironmentFault
from dgnode.features import lock as lock_module
from dgnode.features import store as store_module
from dgnode.features.store import FeatureStore, StoreMetadata
from dgnode.storage import Location

REPO = Path(__file__).resolve().parents[2]
DIMS = {"text": 4, "audio": 3}


def rows(ids: list[str]) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame({
        "dialog_id": ["Ses01F_impro01"] * n, "utt_id": ids, "order": [int(i[1:]) for i in ids],
        "speaker": ["A"] * n, "label": [0] * n, "split": ["train"] * n,
        "text": list(np.ones((n, 4), np.float32)), "audio": list(np.ones((n, 3), np.float32)),
    })


def provenance(ids: list[str]) -> pa.Table:
    return pa.table({"utt_id": ids, "audio_source": ["wav"] * len(ids)})


@pytest.fixture
def store(store_base) -> FeatureStore:
    return FeatureStore.create(store_base / "store", StoreMetadata(model="m", dims=DIMS, label_names=["a", "b"]))


# -- two writers at once ---------------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from features.test_store_writers import provenance, rows
    from dgnode.features.store import FeatureStore
    root, sync, name = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    store = FeatureStore.open(root)
    known = store.stored_utt_ids()  # what an extraction knows when it starts, never re-read by it
    (sync / f"ready-{{name}}").touch()
    while not (sync / "go").exists():
        time.sleep(0.005)
    stored = 0
    ids = [f"u{{i:03d}}" for i in range(60)]
    for start in range(0, 60, 4):
        batch = ids[start:start + 4]
        stored += store.append(rows(batch), skip_ids=known, provenance=provenance(batch))
    print(stored)
""")


@pytest.mark.parametrize("store_kind", ["local", "s3"])
def test_two_concurrent_writers_store_each_utterance_once(store, tmp_path):
    """Two processes append the same 60 ids at once (each knowing only what was stored when it
    started): each id is stored exactly once, none is lost, whether the store is a folder or in S3."""
    script = WRITER.format(tests=str(REPO / "tests"))
    # The AWS variables of the test server travel in the environment, as on a cluster node.
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    writers = [subprocess.Popen([sys.executable, "-c", script, str(store.root), str(tmp_path), name], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"ready-{n}").exists() for n in ("a", "b")):
            assert time.monotonic() < deadline and all(w.poll() is None for w in writers), [w.communicate() for w in writers]
            time.sleep(0.01)
        (tmp_path / "go").touch()
        outputs = [w.communicate(timeout=120) for w in writers]
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
    assert [w.returncode for w in writers] == [0, 0], outputs
    stored = [int(out.strip()) for out, _ in outputs]
    assert sum(stored) == 60
    opened = FeatureStore.open(store.root)
    loaded = opened.load()
    assert (len(opened), len(loaded.frame), loaded.duplicates) == (60, 60, 0)
    assert sorted(loaded.frame["utt_id"]) == [f"u{i:03d}" for i in range(60)]
    # Provenance: one row per processed utterance and writer, every stored row covered.
    prov = opened.read_provenance()
    assert len(prov) == 120 and set(prov["utt_id"]) == set(loaded.frame["utt_id"])
    assert not (store.root / lock_module.LOCK_FILE).exists()
    assert [p.name for p in store.root.children(".*")] == []  # no lock, no temporary


# -- the lock ---------------------------------------------------------------------------------------

def write_lock(root: Location, **holder) -> Location:
    path = root / lock_module.LOCK_FILE
    path.write_text(json.dumps({"token": "t", "since": "then", **holder}))
    return path


@pytest.mark.parametrize("store_kind", ["local", "s3"])
def test_lock_of_a_dead_process_is_broken(store):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    write_lock(store.root, pid=int(dead.stdout), host=socket.gethostname(), started=1.0)
    assert store.append(rows(["u0", "u1"])) == 2
    assert not store.root.children(".writer.lock*")


def test_temporaries_of_a_killed_writer_are_removed_by_the_next(store):
    (store.root / "provenance").mkdir()
    left = [store.root / ".part-1.parquet.0a1b2c3d.tmp", store.root / "provenance" / ".part-1.parquet.0a1b2c3d.tmp"]
    for path in left:
        path.write_bytes(b"PAR1 half")
    resumed = FeatureStore.open(store.root)  # a new run
    assert resumed.stored_utt_ids() == set()  # reading never removes anything
    assert all(p.exists() for p in left)
    assert resumed.append(rows(["u0"])) == 1
    assert not any(p.exists() for p in left)


def test_a_file_given_as_the_store_is_bad_input(tmp_path):
    from dgnode.errors import InputError

    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match=r"file: not a folder: a feature store is a folder"):
        FeatureStore.create(tmp_path / "file", StoreMetadata(model="m", dims=DIMS, label_names=["a"]))


@pytest.mark.parametrize("store_kind", ["local", "s3"])
def test_lock_of_a_reused_pid_is_broken(store):
    # This process is alive, but started long after the recorded start time: another process now.
    write_lock(store.root, pid=os.getppid(), host=socket.gethostname(), started=1.0)
    assert store.append(rows(["u0"])) == 1


def test_live_writer_is_waited_for_then_named(store, monkeypatch):
    import psutil

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = psutil.Process(sleeper.pid).create_time()
        path = write_lock(store.root, pid=sleeper.pid, host=socket.gethostname(), started=started)
        store._lock.timeout = 0.3
        began = time.monotonic()
        with pytest.raises(EnvironmentFault) as raised:
            store.append(rows(["u0"]))
        assert time.monotonic() - began >= 0.3
        assert str(raised.value) == (
            f"{path}: the feature store is being written by pid {sleeper.pid} on {socket.gethostname()} (lock taken "
            "then); waited 0 s. If no dgnode process writes to this store, remove the lock file")
        assert raised.value.exit_code == 1
        assert store.stored_utt_ids() == set() and path.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    # Its writer gone (killed, reaped), the lock is stale: the next append breaks it.
    assert store.append(rows(["u0"])) == 1


@pytest.mark.parametrize("where", [{"host": "elsewhere"}, {"host": socket.gethostname(), "node": "another-container"}])
def test_other_hosts_lock_is_stale_after_the_lease_and_an_empty_one_after_grace(store, where):
    # Its pid means nothing here (another machine, or a container with the same host name).
    path = write_lock(store.root, pid=999_999_999, started=1.0, **where)
    store._lock.timeout = 0.2
    with pytest.raises(EnvironmentFault, match=f"being written by pid 999999999 on {where['host']}"):
        store.append(rows(["u0"]))
    old = time.time() - lock_module.LEASE - 5
    os.utime(path.local_path(), (old, old))
    assert store.append(rows(["u0"])) == 1
    path.write_bytes(b"")
    with pytest.raises(EnvironmentFault, match=r"being written by pid \? on \?"):
        store.append(rows(["u1"]))
    old = time.time() - lock_module.GRACE - 5
    os.utime(path.local_path(), (old, old))
    assert store.append(rows(["u1"])) == 1


def test_lock_is_reentrant_and_a_lock_this_process_left_is_stale(store):
    with store.writing():
        with store.writing():
            assert store.append(rows(["u0"])) == 1
        assert (store.root / lock_module.LOCK_FILE).exists()
    assert not (store.root / lock_module.LOCK_FILE).exists()
    # A release that could not remove the file (the store had turned read-only) leaves our own pid.
    write_lock(store.root, pid=os.getpid(), host=socket.gethostname(), started=0.0)
    assert store.append(rows(["u1"])) == 1


# -- faults while writing ---------------------------------------------------------------------------

def fail_writes(monkeypatch, code: int, after: int, where: str = "") -> list[Location]:
    """Make every Parquet write into a path containing ``where`` fail with ``code`` after ``after`` succeed."""
    real = store_module._atomic_write_parquet
    written: list[Location] = []

    def flaky(table, path):
        if where in str(path):
            if len(written) >= after:
                raise OSError(code, os.strerror(code), str(path))
            written.append(path)
        real(table, path)

    monkeypatch.setattr(store_module, "_atomic_write_parquet", flaky)
    return written


@pytest.mark.parametrize("code, advice", [
    (errno.ENOSPC, "No space left on device): free space on its file system"),
    (errno.EROFS, "Read-only file system): make it writable"),
])
def test_a_refused_write_is_one_line_and_keeps_what_was_stored(store, monkeypatch, code, advice):
    fail_writes(monkeypatch, code, after=1)
    assert store.append(rows(["u0", "u1"])) == 2
    with pytest.raises(EnvironmentFault) as raised:
        store.append(rows(["u2", "u3"]))
    message = str(raised.value)
    assert message.startswith(f"{store.root}: cannot write part-") and message.endswith(
        f".parquet ({advice}, then run the same command again; everything stored before is kept and is not redone")
    assert raised.value.exit_code == 1
    assert FeatureStore.open(store.root).stored_utt_ids() == {"u0", "u1"}
    assert not [p for p in store.root.local_path().rglob("*") if p.name.startswith(".") and p.is_file()]  # no temporary, no lock


def test_provenance_is_committed_with_its_rows(store, monkeypatch):
    """A writer stopped between a batch's rows and its provenance must not leave rows without it."""
    fail_writes(monkeypatch, errno.ENOSPC, after=1, where="/provenance/")
    assert store.append(rows(["u0", "u1"]), provenance=provenance(["u0", "u1"])) == 2
    with pytest.raises(EnvironmentFault, match="No space left on device"):
        store.append(rows(["u2", "u3"]), provenance=provenance(["u2", "u3"]))
    monkeypatch.undo()
    resumed = FeatureStore.open(store.root)
    assert resumed.stored_utt_ids() == {"u0", "u1"}
    assert resumed.append(rows(["u0", "u1", "u2", "u3"]), provenance=provenance(["u2", "u3"])) == 2
    stored = resumed.stored_utt_ids()
    assert stored == {"u0", "u1", "u2", "u3"} and set(resumed.read_provenance()["utt_id"]) == stored
    names = {p.name for p in store.root.children("part-*.parquet")}
    assert names <= {p.name for p in (store.root / "provenance").children("part-*.parquet")}


def test_creating_a_store_on_a_read_only_path_is_one_line(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(Location, "mkdir", refuse)
    with pytest.raises(EnvironmentFault) as raised:
        FeatureStore.create(tmp_path / "new", StoreMetadata(model="m", dims=DIMS, label_names=["a"]))
    assert str(raised.value) == (f"{tmp_path / 'new'}: cannot write the store folder (Read-only file system): make it "
                                 "writable, then run the same command again; everything stored before is kept and is not redone")
