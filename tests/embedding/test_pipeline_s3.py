"""Extraction from a corpus that lives only in a real S3 server (SeaweedFS), the local copy deleted:
``dgnode extract`` on a local Ray reads just the media of the manifest's dialogues, each object
once per node (the rest are cache hits), reports the bytes per node, and keeps the cache bound."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dgnode.corpus.manifest import write_manifest
from dgnode.corpus.scan import scan_corpus
from dgnode.corpus.synth import SynthConfig, synthesize_corpus
from dgnode.embedding.config import ExtractConfig
from dgnode.embedding.pipeline import run_extraction
from dgnode.features.store import FeatureStore
from dgnode.media.config import MediaCacheConfig

pytestmark = pytest.mark.slow

DIALOGUES, UTTERANCES = 3, 4
REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class S3Corpus:
    manifest_path: Path
    manifest: object  # pd.DataFrame
    sizes: dict[str, int]  # every object of the corpus: s3 URI -> bytes
    env: dict[str, str]

    def needed(self) -> dict[str, int]:
        """The objects an extraction of the manifest must read: its wavs and its dialogues' AVIs."""
        uris = set(self.manifest["wav_path"]) | set(self.manifest["video_path"])
        return {uri: self.sizes[uri] for uri in uris}


@pytest.fixture(scope="module")
def s3_corpus(s3_server, tmp_path_factory) -> S3Corpus:
    root = tmp_path_factory.mktemp("s3corpus")
    synthesize_corpus(root / "raw", SynthConfig(seed=1, dialogs=5, utterances_per_dialogue=(8, 8), utterance_seconds=(0.8, 1.6)))
    bucket = s3_server.make_bucket()
    sizes = s3_server.upload(root / "raw", bucket, "iemocap")
    shutil.rmtree(root / "raw")  # from here on the corpus exists only in the bucket
    patch = pytest.MonkeyPatch()
    for name, value in s3_server.env().items():
        patch.setenv(name, value)
    patch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    scan = scan_corpus(f"s3://{bucket}/iemocap")
    chosen = sorted(scan.manifest["dialog_id"].unique())[:DIALOGUES]
    manifest = scan.manifest[scan.manifest["dialog_id"].isin(chosen)].groupby("dialog_id").head(UTTERANCES)
    manifest = manifest.reset_index(drop=True)
    path = root / "scan" / "manifest.parquet"
    path.parent.mkdir()
    write_manifest(manifest, path, {"label_names": list(scan.label_names), "label_scheme": scan.label_scheme})
    yield S3Corpus(path, manifest, {f"s3://{bucket}/{key}": size for key, size in sizes.items()}, s3_server.env())
    patch.undo()


def test_ray_extraction_fetches_each_needed_object_once_per_node(s3_corpus, tmp_path):
    store, cache = tmp_path / "store", tmp_path / "cache"
    env = {**os.environ, **s3_corpus.env, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from dgnode.cli import main; sys.exit(main(sys.argv[1:]))",
         "extract", "--manifest", str(s3_corpus.manifest_path), "--store", str(store), "--model", "tiny",
         "--max_batch_size", "4", "--decode_batch_size", "2", "--decode_tasks", "2", "--progress", "false",
         "--media_cache.dir", str(cache), "--media_cache.max_gb", "1", "--json"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    summary = json.loads("\n".join(lines[lines.index("{"):]))

    # One row per manifest utterance, nothing failed.
    assert (summary["stored"], summary["failed"]) == (len(s3_corpus.manifest), 0)
    rows = FeatureStore.open(store).load().frame
    assert sorted(rows["utt_id"]) == sorted(s3_corpus.manifest["utt_id"])

    # One node (the local Ray); it fetched exactly the needed objects, once each.
    needed = s3_corpus.needed()
    assert list(summary["fetched"]) != ["local"] and len(summary["fetched"]) == 1
    counts = next(iter(summary["fetched"].values()))
    assert counts["files"] == len(needed) == DIALOGUES * (UTTERANCES + 1)
    assert counts["bytes"] == summary["fetched_bytes"] == sum(needed.values())
    # Every other use was a hit: one per utterance wav plus one per decode batch and dialogue AVI
    # (a dialogue is one block, decoded two utterances at a time).
    uses = len(s3_corpus.manifest) + DIALOGUES * math.ceil(UTTERANCES / 2)
    assert counts["hits"] == uses - len(needed)
    assert sum(needed.values()) < sum(s3_corpus.sizes.values()) / 2  # just what it needs
    cached = sorted(p.stat().st_size for p in cache.iterdir() if p.is_file())
    assert cached == sorted(needed.values())


def test_a_tight_cache_bound_is_kept_and_nothing_is_lost(s3_corpus, tmp_path):
    largest = max(s3_corpus.needed().values())
    bound = int(largest * 1.5)
    config = ExtractConfig(manifest=str(s3_corpus.manifest_path), store=str(tmp_path / "store"), model="tiny",
                           max_batch_size=4, decode_batch_size=2, progress=False,
                           media_cache=MediaCacheConfig(dir=str(tmp_path / "cache"), max_gb=bound / 1e9))
    summary = run_extraction(config, engine="process")
    assert (summary.stored, summary.failed) == (len(s3_corpus.manifest), 0)
    assert list(summary.fetched) == ["local"]
    # Evicted objects are fetched again when needed again; the cache never stays above its bound.
    assert summary.fetched_bytes >= sum(s3_corpus.needed().values())
    assert sum(p.stat().st_size for p in (tmp_path / "cache").iterdir() if p.is_file()) <= bound
