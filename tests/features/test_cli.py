"""`dgnode features import|synth|info` through the features package's COMMANDS."""

from __future__ import annotations

import json
import re
import os
import pickle

import numpy as np

from dgnode.command import run_command
from dgnode.features.cli import COMMANDS
from dgnode.features.store import FeatureStore

STRUCTURE = {
    "dataset": "tiny",
    "labels": ["calm", "upset"],
    "splits": {"train": ["a", "b"], "valid": ["c"], "test": ["d"]},
    "dialogues": {
        "a": {"speakers": ["X", "Y", "X"], "labels": [0, 1, 0]},
        "b": {"speakers": ["Y", "Y"], "labels": [1, None]},
        "c": {"speakers": ["X"], "labels": [1]},
        "d": {"speakers": ["Z", "X"], "labels": [0, 0]},
        "e": {"speakers": ["X"], "labels": [0]},
    },
}


def main(argv: list[str]) -> int:
    return run_command(COMMANDS, argv)


def test_synth_then_info(tmp_path, capsys):
    structure = tmp_path / "tiny_structure.json"
    structure.write_text(json.dumps(STRUCTURE))
    store = tmp_path / "store"
    code = main(["features", "synth", "--structure", str(structure), "--store", str(store), "--dims", "{text: 6, vision: 2}", "--seed", "5", "--noise", "0.5"])
    assert code == 0
    synth_out = capsys.readouterr().out
    opened = FeatureStore.open(store)
    assert opened.metadata.dims == {"text": 6, "vision": 2}
    assert opened.metadata.preprocessing["seed"] == 5 and opened.metadata.preprocessing["noise"] == 0.5
    assert opened.metadata.extra["skipped_dialogues"] == ["e"]

    assert main(["features", "info", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"rows\s+│\s+8\s+│", out)
    for text in ("text 6, vision 2", "2 dialogues, 5 utterances", "1 dialogues, 1 utterances",
                 "label calm", "train 2 / valid 0 / test 2", "label upset", "train 2 / valid 1 / test 0",
                 "label unlabelled", "train 1 / valid 0 / test 0", opened.fingerprint()):
        assert text in out, text
    assert opened.fingerprint() in synth_out
    assert re.search(r"skipped \(in no split\)\s+│\s+1: e\s+│", synth_out)


def test_import_prints_the_report_and_refusals_exit_2(tmp_path, capsys):
    dialogs = {"Ses01F_impro01": 2, "Ses05M_impro02": 3}
    obj = (
        {d: [f"{d}_F{i:03d}" for i in range(n)] for d, n in dialogs.items()},
        {d: ["F", "M", "F"][:n] for d, n in dialogs.items()},
        {d: [1, 4, 5][:n] for d, n in dialogs.items()},
        {d: np.ones((n, 3), np.float32) for d, n in dialogs.items()},
        {d: np.zeros((n, 2), np.float32) for d, n in dialogs.items()},
        {d: np.full((n, 1), 2.0, np.float32) for d, n in dialogs.items()},
        {d: ["x"] * n for d, n in dialogs.items()},
        ["Ses01F_impro01"],
        ["Ses05M_impro02"],
    )
    path = tmp_path / "features.pkl"
    path.write_bytes(pickle.dumps(obj))
    assert main(["features", "import", str(path), "--format", "mmgcn", "--store", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    for text in ("mmgcn / iemocap", "text 3, audio 2, vision 1", "1 dialogues, 3 utterances", "rows written", "5 (rows already stored are skipped)", "sad 2, exc 2, fru 1"):
        assert text in out, text
    assert len(FeatureStore.open(tmp_path / "s")) == 5

    class Payload:
        def __reduce__(self):
            return (os.system, ("true",))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(Payload()))
    assert main(["features", "import", str(evil), "--format", "cosmic", "--store", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"dgnode: error: {evil}: refused to load global 'posix.system'")


def test_dims_are_a_typed_mapping(tmp_path, iemocap_structure_path, capsys):
    store = tmp_path / "s"
    base = ["features", "synth", "--structure", str(iemocap_structure_path), "--store", str(store)]
    for bad, message in [("{text: 0}", "dims: expected modality: width"), ("{speech: 3}", "dims: expected modality: width"),
                         ("{}", "dims: expected modality: width"), ("{text: many}", "dims")]:
        assert main([*base, "--dims", bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not store.exists()
