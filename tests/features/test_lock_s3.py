"""The store's writer lock in S3 (exclusive create by conditional PUT, the lease, conditional
DELETE): a killed writer's lock is broken after the lease and not before, a lock taken again
meanwhile is never removed, a writer that lost its lock stores nothing. Local locks:
tests/features/test_store_writers.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from dgnode.errors import EnvironmentFault
from dgnode.features import lock as lock_module
from dgnode.features.store import FeatureStore, StoreMetadata
from dgnode.storage import create_exclusive, read_versioned
from dgnode.storage.exclusive import Versioned
from tests.features.test_store_writers import DIMS, REPO, provenance, rows

HOLDER = textwrap.dedent("""
    import socket, sys, time
    socket.gethostname = lambda: "another-node"  # a writer on another node of the cluster
    from dgnode.features.store import FeatureStore
    store = FeatureStore.open(sys.argv[1])
    with store.writing():
        print("locked", flush=True)
        time.sleep(120)
""")


@pytest.fixture
def store(store_base) -> FeatureStore:
    return FeatureStore.create(store_base / "store", StoreMetadata(model="m", dims=DIMS, label_names=["a", "b"]))


@pytest.mark.parametrize("store_kind", ["s3"])
def test_a_killed_writers_lock_from_another_node_is_broken_after_the_lease(store):
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, store.root.uri], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked", holder.communicate(timeout=30)
        locked = time.monotonic()
    finally:
        holder.kill()  # SIGKILL while it holds the lock: nothing is released
        holder.wait()
    lock = store.root / lock_module.LOCK_FILE
    assert json.loads(lock.read_text())["host"] == "another-node"

    waiter = FeatureStore.open(store.root)
    waiter._lock.lease, waiter._lock.timeout = 2.0, 0.3
    with pytest.raises(EnvironmentFault) as raised:  # younger than the lease: a writer that may be alive
        waiter.append(rows(["u0"]))
    assert str(raised.value).startswith(f"{lock.uri}: the feature store is being written by pid {holder.pid} on "
                                        "another-node") and str(raised.value).endswith("remove the lock object")
    waiter._lock.timeout = 30.0
    assert waiter.append(rows(["u0", "u1"])) == 2
    # Broken once older than the lease by the server's clock (whole seconds), not long after.
    assert 2.0 - 1.0 <= time.monotonic() - locked < 2.0 + 5.0
    assert read_versioned(lock) is None
    assert FeatureStore.open(store.root).load().frame["utt_id"].tolist() == ["u0", "u1"]


@pytest.mark.parametrize("store_kind", ["s3"])
def test_a_lock_taken_again_meanwhile_is_not_removed(store, monkeypatch):
    """Judged stale from an old read, the lock is deleted only if unchanged (``If-Match``): a live
    writer that broke and re-took it in between keeps it."""
    lock = store.root / lock_module.LOCK_FILE
    assert create_exclusive(lock, json.dumps({"token": "dead", "pid": 1, "host": "another-node"}).encode())
    seen = read_versioned(lock)
    lock.delete()
    parent = psutil.Process(os.getppid())
    live = {"token": "live", "pid": parent.pid, "host": socket.gethostname(), "node": lock_module._node(),
            "started": parent.create_time(), "since": "now"}
    assert create_exclusive(lock, json.dumps(live).encode())
    # The waiter's first read is the old one, older than the lease: it tries to break that version.
    views = iter([Versioned(seen.data, seen.version, lock_module.LEASE + 1)])
    real = lock_module.read_versioned
    monkeypatch.setattr(lock_module, "read_versioned", lambda where: next(views, None) or real(where))
    store._lock.timeout = 0.3
    with pytest.raises(EnvironmentFault, match=f"being written by pid {parent.pid} on {socket.gethostname()}"):
        store.append(rows(["u0"]))
    assert json.loads(lock.read_text())["token"] == "live"
    assert store.stored_utt_ids() == set()


@pytest.mark.parametrize("store_kind", ["local", "s3"])
def test_a_writer_that_lost_its_lock_stores_nothing(store):
    store._lock.lease = 0.4
    lock = store.root / lock_module.LOCK_FILE
    with store.writing():
        time.sleep(0.25)  # past half the lease, another writer may judge the lock stale...
        lock.delete()  # ...and does: it breaks it and takes it
        assert create_exclusive(lock, json.dumps({"token": "other", "pid": 1, "host": "another-node"}).encode())
        with pytest.raises(EnvironmentFault, match="lost it to another writer.*this batch was not stored"):
            store.append(rows(["u0"]), provenance=provenance(["u0"]))
    assert json.loads(lock.read_text())["token"] == "other"  # not released by the writer that lost it
    assert FeatureStore.open(store.root).stored_utt_ids() == set()
    assert (store.root / "provenance").children() == []
