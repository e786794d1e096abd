"""Fixtures of the corpus tests: synthetic IEMOCAP trees.

The tests write into ``scratch_dir`` rather than ``tmp_path``: a private ``mkdtemp`` folder in
RAM (``/dev/shm``) when there is one, removed in teardown, also when the test fails. A structure
corpus is ~21k small files, and creating them on a busy shared disk took 10x longer than the
work itself; a private folder also cannot be pruned by another pytest process sharing
``/tmp/pytest-of-<user>``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from dgnode.corpus.synth import SynthConfig, SynthSummary, synthesize_corpus

_RAM_DIR = Path("/dev/shm")
_RAM_NEEDED = 2 * 1024**3


def _scratch(tmp_path_factory, name: str) -> Path:
    if _RAM_DIR.is_dir() and os.access(_RAM_DIR, os.W_OK) and shutil.disk_usage(_RAM_DIR).free > _RAM_NEEDED:
        return Path(tempfile.mkdtemp(prefix=f"dgnode-{name}-", dir=_RAM_DIR))
    return tmp_path_factory.mktemp(name)


@pytest.fixture
def scratch_dir(tmp_path_factory):
    """An empty folder, in RAM when possible; removed afterwards."""
    path = _scratch(tmp_path_factory, "corpus")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def media_corpus(tmp_path_factory) -> SynthSummary:
    """The default mini corpus with AVIs and dialogue wavs, written once (read-only for tests)."""
    path = _scratch(tmp_path_factory, "media-corpus")
    yield synthesize_corpus(path, SynthConfig(seed=0))
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def text_corpus(scratch_dir: Path) -> SynthSummary:
    """A fresh mini corpus without dialogue-level media, for tests that damage it."""
    return synthesize_corpus(scratch_dir / "corpus", SynthConfig(seed=0, video=False))
