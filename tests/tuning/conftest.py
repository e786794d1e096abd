"""Fixtures of the tuning and distributed-training tests: a tiny synthetic feature store and a
training config (:data:`tests.tuning.tiny.TINY_OVERRIDES`) whose trials take about a second."""

from __future__ import annotations

import json
import os

import pytest

from tests.tuning.tiny import TINY_OVERRIDES

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory, iemocap_structure_path):
    """12 train / 4 valid / 4 test IEMOCAP dialogues cut to 12 utterances, dims 16/12/8."""
    from dgnode.features.synth import synthesize_features

    root = tmp_path_factory.mktemp("tiny_store")
    source = json.loads(iemocap_structure_path.read_text())
    keep = {"train": source["splits"]["train"][:12], "valid": source["splits"]["valid"][:4], "test": source["splits"]["test"][:4]}
    dialogues = {d: {k: v[:12] for k, v in source["dialogues"][d].items()} for ids in keep.values() for d in ids}
    structure = root / "structure.json"
    structure.write_text(json.dumps({"dataset": "iemocap-tiny", "labels": source["labels"], "note": "test subset",
                                     "splits": keep, "dialogues": dialogues}))
    store = root / "store"
    synthesize_features(structure, store, {"text": 16, "audio": 12, "vision": 8}, seed=0)
    return store


@pytest.fixture(scope="session")
def tiny_config(tiny_store):
    from dgnode.training.config import load_train_config

    return load_train_config(None, {**TINY_OVERRIDES, "data.store": str(tiny_store)})
