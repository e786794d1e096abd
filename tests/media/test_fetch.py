"""The per-node media cache against a real S3 server (SeaweedFS): one download per object however
many users at once, atomic copies, the size bound, local paths untouched.

Concurrency is tested with threads, each with its own cache instance: ``flock`` locks belong to
open file descriptions, so two threads contend exactly as two worker processes of a node do
(the Ray extraction test covers real processes)."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dgnode.media.config import MediaCacheConfig
from dgnode.media.fetch import MediaCache
from dgnode.storage import resolve


def _cache(directory: Path, max_bytes: float = 1e9) -> MediaCache:
    return MediaCache(MediaCacheConfig(dir=str(directory), max_gb=max_bytes / 1e9))


def _put(uri: str, name: str, size: int, fill: int = 0) -> str:
    location = resolve(uri) / name
    location.write_bytes(bytes([fill % 256]) * size)
    return location.uri


def test_local_paths_are_read_where_they_are(tmp_path):
    media = tmp_path / "utt.wav"
    media.write_bytes(b"RIFF")
    cache = _cache(tmp_path / "cache")
    with cache.local(str(media)) as local:
        assert local == str(media)
    with pytest.raises(FileNotFoundError, match="gone.wav"), cache.local(str(tmp_path / "gone.wav")):
        pass
    assert not (tmp_path / "cache").exists()  # nothing copied, nothing created
    assert cache.stats.as_dict() == {"files": 0, "bytes": 0, "hits": 0}


def test_an_object_is_fetched_once_then_read_from_the_cache(s3_uri, tmp_path):
    uri = _put(s3_uri, "Ses01F_impro01.avi", 3000, fill=7)
    first, second = _cache(tmp_path / "c"), _cache(tmp_path / "c")  # e.g. two tasks on one node
    with first.local(uri) as local:
        assert Path(local).parent == tmp_path / "c" and Path(local).name.endswith("Ses01F_impro01.avi")
        assert Path(local).read_bytes() == bytes([7]) * 3000
    with first.local(uri) as again, second.local(uri) as other:
        assert again == other == local
    assert first.stats.as_dict() == {"files": 1, "bytes": 3000, "hits": 1}
    assert second.stats.as_dict() == {"files": 0, "bytes": 0, "hits": 1}
    assert [p.name for p in (tmp_path / "c").iterdir() if p.is_file()] == [Path(local).name]  # no temporary left
    with pytest.raises(FileNotFoundError, match=rf"no such object: {s3_uri}/missing.wav"):
        with first.local(f"{s3_uri}/missing.wav"):
            pass


def test_concurrent_users_on_a_node_download_each_object_once(s3_uri, tmp_path):
    sizes = {f"d{i}.avi": 400_000 + i for i in range(3)}
    uris = [_put(s3_uri, name, size, fill=i) for i, (name, size) in enumerate(sizes.items())]
    barrier = threading.Barrier(6)

    def user(k: int):
        cache = _cache(tmp_path / "node")
        barrier.wait()
        seen = []
        for uri in uris[k % 3:] + uris[: k % 3]:
            with cache.local(uri) as local:
                seen.append(len(Path(local).read_bytes()))  # always the whole object
        return cache.stats, seen

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(user, range(6)))
    assert all(sorted(seen) == sorted(sizes.values()) for _, seen in results)
    assert sum(s.files for s, _ in results) == 3
    assert sum(s.bytes for s, _ in results) == sum(sizes.values())
    assert sum(s.hits for s, _ in results) == 6 * 3 - 3


def test_the_bound_evicts_least_recently_used_never_a_file_in_use(s3_uri, tmp_path):
    a, b, c, d = (_put(s3_uri, f"{name}.wav", 1000) for name in "abcd")
    big = _put(s3_uri, "big.avi", 5000)
    cache = _cache(tmp_path / "c", max_bytes=2500)

    def held() -> list[str]:
        return sorted(p.name.split("-", 1)[1] for p in (tmp_path / "c").iterdir() if p.is_file())

    for uri in (a, b, a):  # a is used again: b is now the least recently used
        with cache.local(uri):
            time.sleep(0.02)  # distinct modification times
    with cache.local(c):
        pass
    assert held() == ["a.wav", "c.wav"]
    with cache.local(a) as in_use:
        for uri in (b, d):  # each download evicts the oldest other file, never the one being read
            with cache.local(uri):
                time.sleep(0.02)
        assert held() == ["a.wav", "d.wav"]
        with cache.local(big):
            assert held() == ["a.wav", "big.avi"] and cache.size() == 6000  # over the bound: both in use
        assert held() == ["a.wav"]  # big, released, is evicted at once
        assert Path(in_use).is_file()
    assert held() == ["a.wav"] and cache.size() <= 2500
    assert cache.stats.files == 6  # a, b, c, then b, d, big: an evicted object is fetched anew
    # A temporary left by a killed download (its lock is free) goes with the next eviction.
    stale = tmp_path / "c" / f".{'0' * 32}-x.wav.1234abcd.tmp"
    stale.write_bytes(b"partial")
    cache.evict()
    assert not stale.exists() and held() == ["a.wav"]


def test_a_file_larger_than_the_bound_is_served_then_dropped(s3_uri, tmp_path):
    big = _put(s3_uri, "big.avi", 5000)
    cache = _cache(tmp_path / "c", max_bytes=1000)
    with cache.local(big) as local:
        assert os.path.getsize(local) == 5000
    assert cache.size() == 0
