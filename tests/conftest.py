"""Shared fixtures. Stage-specific fixtures live in tests/<stage>/conftest.py.

Servers and clusters started here are stopped in teardown, also when a test fails, and only the
processes these fixtures started are ended (by PID).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

# Keep BLAS/torch thread pools small: CI has 2 cores and Ray workers run beside the test process.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def iemocap_structure_path() -> Path:
    return REPO_ROOT / "dgnode" / "data" / "iemocap_structure.json"


@pytest.fixture(scope="session")
def meld_structure_path() -> Path:
    return REPO_ROOT / "dgnode" / "data" / "meld_structure.json"


@pytest.fixture(scope="session")
def ray_local(tmp_path_factory):
    """One in-process local Ray for the whole session (starting Ray costs ~10 s on 2 cores)."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=4,
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=512 * 1024**2,
            _temp_dir=str(tmp_path_factory.mktemp("ray")),
        )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 server (SeaweedFS ``weed mini``) on free 127.0.0.1 ports for the session; stopped
    (its own process group, by PID) at the end, also when tests fail. See ``tests/seaweed.py``."""
    from tests.seaweed import SeaweedServer

    server = SeaweedServer(tmp_path_factory.mktemp("seaweed"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_uri(s3_server, monkeypatch) -> str:
    """``s3://<fresh bucket>/t`` with this process's AWS variables pointing at the test server."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return f"s3://{s3_server.make_bucket()}/t"


@pytest.fixture(scope="session")
def s3_ray_head(s3_server):
    """A local Ray head whose workers hold the S3 server's AWS variables (``tests/ray_head.py``):
    drivers join it as subprocesses with ``s3_ray_head.driver_env()``; stopped (its own session
    only) at the end, also when tests fail."""
    from tests.ray_head import RayHead

    head = RayHead(s3_server.env())
    try:
        head.start()
        yield head
    finally:
        head.stop()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` started by ``mlflow/server.sh`` on a free 127.0.0.1 port.

    SQLite backend and artifact directory in a temporary directory; yields the server URL once
    ``/health`` answers. Stopped by ``mlflow/stop.sh`` (its PID file) at the end of the session,
    with a ``SIGKILL`` to the server's own process group as a fallback, also when tests fail.
    """
    import signal
    import socket
    import subprocess
    import time
    import urllib.request

    root = tmp_path_factory.mktemp("mlflow_server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "MLFLOW_HOST": "127.0.0.1",
        "MLFLOW_PORT": str(port),
        "MLFLOW_WORKERS": "2",
        "MLFLOW_SERVER_DIR": str(root),
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{root}/mlflow.db",
        "MLFLOW_ARTIFACTS_DESTINATION": str(root / "artifacts"),
        "MLFLOW_BIN": str(Path(sys.executable).with_name("mlflow")),
    }
    subprocess.run([str(REPO_ROOT / "mlflow" / "server.sh")], env=env, cwd=root, check=True, capture_output=True)
    pid = int((root / "server.pid").read_text())
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                log = (root / "server.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"mlflow server on {url} did not answer /health within 120 s; log:\n{log}")
            time.sleep(0.3)
        yield url
    finally:
        subprocess.run([str(REPO_ROOT / "mlflow" / "stop.sh")], env=env, cwd=root, capture_output=True, timeout=60)
        try:
            os.killpg(pid, signal.SIGKILL)  # only if stop.sh failed: the group is gone otherwise
        except (ProcessLookupError, PermissionError):
            pass


TINY_SPLITS = {"train": 6, "valid": 2, "test": 3}
TINY_DIMS = {"text": 16, "audio": 12, "vision": 8}


def write_tiny_structure(source: Path, target: Path, counts: dict[str, int] = TINY_SPLITS) -> Path:
    """The first ``counts[split]`` dialogues of each split of a real structure file."""
    import json

    structure = json.loads(source.read_text(encoding="utf-8"))
    splits = {split: structure["splits"][split][:n] for split, n in counts.items()}
    keep = [d for ids in splits.values() for d in ids]
    structure.update(splits=splits, dialogues={d: structure["dialogues"][d] for d in keep})
    target.write_text(json.dumps(structure), encoding="utf-8")
    return target


@pytest.fixture(scope="session")
def tiny_synthetic_store(tmp_path_factory, iemocap_structure_path) -> Path:
    """Synthetic features (dims TINY_DIMS) over 11 real IEMOCAP dialogues (6 train, 2 valid, 3 test)."""
    from dgnode.features.synth import synthesize_features

    root = tmp_path_factory.mktemp("tiny_store")
    structure = write_tiny_structure(iemocap_structure_path, root / "structure.json")
    synthesize_features(structure, root / "store", TINY_DIMS, seed=5)
    return root / "store"


@dataclass
class MeldRelease:
    """A small synthetic MELD release (every trap dialogue of the real one) and its scan."""

    summary: Any  # dgnode.corpus.meld_synth.MeldSynthSummary
    scan: Any  # dgnode.corpus.scan.ScanResult
    manifest_path: Path


@pytest.fixture(scope="session")
def meld_release(tmp_path_factory) -> MeldRelease:
    """12 dialogues (the 9 trap dialogues, each as short as its traps allow, and 3 more of 2-3
    utterances), clips of 0.6-1.6 s, overlong clips of 36 s: written and scanned once (read-only)."""
    from dgnode.corpus.detect import scan_release
    from dgnode.corpus.scan import write_scan
    from dgnode.corpus.synth import SynthConfig, synthesize_corpus

    root = tmp_path_factory.mktemp("meld")
    summary = synthesize_corpus(root / "raw", SynthConfig(dataset="meld", dialogs=12, utterances_per_dialogue=(2, 3),
                                                          utterance_seconds=(0.6, 1.6), overlong_seconds=36.0))
    scan = scan_release(root / "raw", "meld")
    return MeldRelease(summary, scan, write_scan(scan, root / "scan")["manifest"])


@pytest.fixture(scope="session")
def meld_store(ray_local, meld_release, tmp_path_factory):
    """The release's utterances extracted on local Ray with the tiny random-init ImageBind:
    ``(store path, ExtractSummary)``."""
    from dgnode.embedding.config import ExtractConfig
    from dgnode.embedding.pipeline import run_extraction

    store = tmp_path_factory.mktemp("meld_store") / "features"
    summary = run_extraction(ExtractConfig(manifest=str(meld_release.manifest_path), store=str(store), model="tiny",
                                           max_batch_size=8, decode_batch_size=4, decode_tasks=2, progress=False))
    return store, summary
