"""Synthetic feature stores over the real IEMOCAP structure, shared by the training tests.

``iemocap_store``: all 151 dialogues (7433 utterances), small dims (text 64, audio 48, vision
32) so a DGODE epoch takes about a second on 2 cores. ``small_store``: 20/4/6 train/valid/test
dialogues of the same structure, for tests that only need the machinery to run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SMALL_DIMS = {"text": 64, "audio": 48, "vision": 32}


@pytest.fixture(scope="session")
def iemocap_store(tmp_path_factory, iemocap_structure_path) -> Path:
    from dgnode.features.synth import synthesize_features

    root = tmp_path_factory.mktemp("iemocap_store") / "store"
    synthesize_features(iemocap_structure_path, root, SMALL_DIMS, seed=0)
    return root


@pytest.fixture(scope="session")
def iemocap_data(iemocap_store):
    from dgnode.features.dataset import load_conversations

    return load_conversations(iemocap_store)


@pytest.fixture(scope="session")
def small_store(tmp_path_factory, iemocap_structure_path) -> Path:
    from dgnode.features.synth import synthesize_features

    structure = json.loads(Path(iemocap_structure_path).read_text())
    keep = {"train": 20, "valid": 4, "test": 6}
    splits = {split: structure["splits"][split][:count] for split, count in keep.items()}
    kept = {d for ids in splits.values() for d in ids}
    structure["splits"] = splits
    structure["dialogues"] = {d: v for d, v in structure["dialogues"].items() if d in kept}
    directory = tmp_path_factory.mktemp("small_store")
    path = directory / "structure.json"
    path.write_text(json.dumps(structure))
    synthesize_features(path, directory / "store", SMALL_DIMS, seed=1)
    return directory / "store"


@pytest.fixture(scope="session")
def small_data(small_store):
    from dgnode.features.dataset import load_conversations

    return load_conversations(small_store)


@pytest.fixture(scope="session")
def fast_config_path(repo_root) -> Path:
    return repo_root / "configs" / "dgode_fast.yaml"
