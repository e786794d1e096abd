"""fit's outputs and the `dgnode train` / `dgnode evaluate` commands."""

from __future__ import annotations

import json

import pytest
import torch

from dgnode.command import run_command
from dgnode.training.cli import COMMANDS
from dgnode.training.config import load_train_config

PNG = b"\x89PNG\r\n\x1a\n"


def run_cli(argv, capsys) -> tuple[int, list[str], str]:
    # This package's commands only: `dgnode.cli.main` imports every stage's CLI.
    code = run_command(COMMANDS, argv)
    captured = capsys.readouterr()
    return code, captured.out.strip().splitlines(), captured.err


@pytest.mark.slow
def test_train_then_evaluate_reproduces_test_metrics(small_store, fast_config_path, tmp_path, capsys):
    out = tmp_path / "run"
    code, lines, _ = run_cli(
        ["train", "--data.store", str(small_store), "--config", str(fast_config_path), "--train.epochs=2",
         "--report.tsne_points", "200", "--out", str(out), "--progress=false"],
        capsys,
    )
    assert code == 0
    final = json.loads(lines[-1])  # the last stdout line is the final metrics
    assert final["model"] == "dgode" and final["epochs_run"] == 2
    assert 0.0 <= final["test_weighted_f1"] <= 1.0
    assert set(final["test_per_class_f1"]) == {"hap", "sad", "neu", "ang", "exc", "fru"}
    assert any("DGODE paper" in line for line in lines)  # the summary table shows the paper row

    for name in ("config.yaml", "best.pt", "history.json", "report.json",
                 "confusion_test.png", "per_class_f1_test.png", "tsne_test.png"):
        assert (out / name).exists(), name
    for name in ("confusion_test.png", "per_class_f1_test.png", "tsne_test.png"):
        assert (out / name).read_bytes()[:8] == PNG
    report = json.loads((out / "report.json").read_text())
    assert report["test"]["weighted_f1"] == final["test_weighted_f1"]
    assert report["paper_reference"]["weighted_f1"] == 72.8
    assert report["data"]["dialogues"] == {"train": 20, "valid": 4, "test": 6}
    assert report["best_epoch"] == max(range(2), key=lambda e: report["history"][e]["valid_wf1"])
    assert report["plots"] == {"confusion": "confusion_test.png", "per_class_f1": "per_class_f1_test.png", "tsne": "tsne_test.png"}
    config = load_train_config(out / "config.yaml")
    assert config.data.store == str(small_store) and config.train.epochs == 2
    checkpoint = torch.load(out / "best.pt", weights_only=True)
    assert checkpoint["epoch"] == report["best_epoch"] + 1 and "optimizer" not in checkpoint

    code, lines, _ = run_cli(["evaluate", "--run", str(out)], capsys)
    assert code == 0
    evaluated = json.loads(lines[-1])
    assert evaluated["weighted_f1"] == report["test"]["weighted_f1"]
    assert evaluated["confusion"] == report["test"]["confusion"]
    assert json.loads((out / "eval_test.json").read_text())["accuracy"] == report["test"]["accuracy"]

    code, lines, _ = run_cli(["evaluate", "--run", str(out), "--split", "valid"], capsys)
    assert json.loads(lines[-1])["weighted_f1"] == report["best_valid_weighted_f1"]


def test_unknown_config_key_is_a_one_line_error(small_store, tmp_path, capsys):
    code, lines, err = run_cli(
        ["train", "--data.store", str(small_store), "--model.hiden=64", "--out", str(tmp_path / "x")], capsys
    )
    assert code == 2
    assert "unknown key(s) model.hiden" in err and "valid keys under model" in err
    assert err.count("\n") == 1 and not (tmp_path / "x").exists()


def test_missing_store_and_missing_run_are_clear_errors(tmp_path, capsys):
    code, _, err = run_cli(["train", "--data.store", str(tmp_path / "nope"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "not a feature store: metadata.json is missing" in err and "nope" in err
    code, _, err = run_cli(["evaluate", "--run", str(tmp_path)], capsys)
    assert code == 2 and "not a finished run: config.yaml is missing" in err


def test_a_baseline_run_shows_no_dgode_paper_numbers(small_store, repo_root, tmp_path, capsys):
    out = tmp_path / "mlp"
    code, lines, _ = run_cli(
        ["train", "--data.store", str(small_store), "--config", str(repo_root / "configs" / "baseline_mlp_demo.yaml"),
         "--train.epochs=1", "--report.tsne_points", "0", "--out", str(out), "--progress=false"],
        capsys,
    )
    assert code == 0 and json.loads(lines[-1])["model"] == "mlp"
    assert not any("DGODE paper" in line for line in lines)
    assert json.loads((out / "report.json").read_text())["paper_reference"] is None


@pytest.mark.slow
def test_train_on_a_store_extracted_from_raw_meld(meld_release, meld_store, repo_root, tmp_path, capsys):
    """`dgnode train` with configs/dgode_meld.yaml (the paper's lr 5e-6 and batch 8) on the tiny-model
    features of a generated MELD release: 7 classes in the paper's MELD column order, multi-party
    speakers indexed by first appearance, the paper's MELD row (weighted F1 only)."""
    from dgnode.features.dataset import load_conversations

    store, _ = meld_store
    out = tmp_path / "meld-run"
    code, lines, _ = run_cli(
        ["train", "--data.store", str(store), "--config", str(repo_root / "configs" / "dgode_meld.yaml"),
         "--model.hidden=16", "--model.ode.method=rk4", "--model.ode.step_size=0.5", "--train.epochs=2",
         "--report.tsne_points=0", "--out", str(out), "--progress=false"],
        capsys,
    )
    assert code == 0
    final = json.loads(lines[-1])
    assert list(final["test_per_class_f1"]) == ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]
    table = next(line for line in lines if "DGODE paper" in line)
    assert "67.2" in table
    report = json.loads((out / "report.json").read_text())
    assert report["paper_reference"] == {"source": report["paper_reference"]["source"], "per_class_f1": {},
                                         "weighted_f1": 67.2}
    summary = meld_release.summary
    assert report["data"]["dialogues"] == {s: sum(d.split == m for d in summary.dialogues)
                                           for s, m in (("train", "train"), ("valid", "dev"), ("test", "test"))}
    config = load_train_config(out / "config.yaml")
    assert (config.optim.lr, config.train.batch_size) == (5e-6, 8)
    # Speakers are indices of first appearance in each dialogue, however many take part.
    data = load_conversations(store)
    for conversation in data.conversations:
        names = [_speaker_of(summary, u) for u in conversation.utt_ids]
        ranks = {name: rank for rank, name in enumerate(dict.fromkeys(names))}
        assert conversation.speakers.tolist() == [ranks[n] for n in names]
    assert data.num_speakers == max(len(set(_speaker_of(summary, u) for u in c.utt_ids)) for c in data.conversations)


def _speaker_of(summary, utt_id: str) -> str:
    split, dialogue, utterance = utt_id.split("_")
    return next(u.speaker for d in summary.dialogues if d.split == split and d.dialogue == int(dialogue[3:])
                for u in d.utterances if u.utterance == int(utterance[3:]))
