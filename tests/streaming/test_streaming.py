"""Streaming prediction: equal to the causal model's batch predictions, utterance by utterance,
for DGODE and CORECT; refuses non-causal runs; validates what is pushed; the CLI."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from dgnode.command import run_command
from dgnode.errors import InputError
from dgnode.features.dataset import collate, load_conversations
from dgnode.features.store import FeatureStore
from dgnode.models import build_model
from dgnode.streaming import NotCausalError, StreamingPredictor, causal_mode, latency_summary, require_causal
from dgnode.streaming.cli import COMMANDS
from dgnode.training.config import load_train_config
from dgnode.training.rundir import RunDir
from dgnode.training.best import load_run


def main(argv: list[str]) -> int:
    return run_command(COMMANDS, argv)

MODELS = ("dgode", "corect")


def stream_dialogue(predictor: StreamingPredictor, stored, dialog_id: str):
    """Push one stored dialogue's raw vectors and speaker names, in order."""
    frame = stored.frame
    rows = np.flatnonzero(frame["dialog_id"].to_numpy() == dialog_id)
    names = frame["speaker"].iloc[rows].astype(str).tolist()
    predictor.start(dialog_id, speakers=names)
    return [predictor.push({m: stored.vectors[m][r] for m in predictor.dims}, names[k]) for k, r in enumerate(rows.tolist())]


@pytest.mark.parametrize("name", MODELS)
def test_streaming_equals_batch_causal_predictions_utterance_by_utterance(name, causal_runs, tiny_store):
    run = causal_runs[name]
    predictor = StreamingPredictor.from_run(run)
    assert predictor.exact
    trainer, _ = load_run(run)
    batch = trainer.evaluate("test")  # batches of 2 dialogues, as training evaluates
    batch_labels = dict(zip(batch.utt_ids, batch.predictions.tolist()))
    stored = FeatureStore.open(tiny_store).load()
    model = trainer.core_model.eval()
    streamed = 0
    for conversation in trainer.data.split("test"):
        predictions = stream_dialogue(predictor, stored, conversation.dialog_id)
        assert [p.position for p in predictions] == list(range(len(conversation)))
        assert [p.label for p in predictions] == [batch_labels[u] for u in conversation.utt_ids]
        with torch.no_grad():
            whole = torch.softmax(model(collate([conversation])).logits, dim=1).numpy()
        # A prefix is a smaller matrix than the whole dialogue: float rounding only.
        np.testing.assert_allclose(np.stack([p.probabilities for p in predictions]), whole, rtol=0, atol=1e-6)
        assert [p.label_name for p in predictions] == [trainer.data.label_names[p.label] for p in predictions]
        assert all(p.latency_ms > 0 for p in predictions)
        # Pushing the loaded (already normalised) dialogue gives the same predictions.
        assert [p.label for p in predictor.run(conversation)] == [p.label for p in predictions]
        streamed += len(predictions)
    assert streamed == len(batch.utt_ids) == 176  # every test utterance of the tiny store
    assert len(set(batch.predictions.tolist())) > 1  # not a constant predictor


@pytest.mark.parametrize("name", MODELS)
def test_trained_causal_models_ignore_later_utterances_exactly(name, causal_runs):
    trainer, _ = load_run(causal_runs[name])
    model = trainer.core_model.eval()
    conversations = trainer.data.split("test")
    cut = 10
    first = len(conversations[0])
    with torch.no_grad():
        before = model(collate(conversations)).logits
        changed = conversations[0]
        for features in changed.features.values():
            features[cut:] = torch.randn_like(features[cut:]) * 3.0
        changed.speakers[cut:] = 1 - changed.speakers[cut:]
        after = model(collate(conversations)).logits
    assert torch.equal(before[:cut], after[:cut])  # no prediction depends on a later utterance
    assert not torch.allclose(before[cut:first], after[cut:first])
    assert torch.equal(before[first:], after[first:])


@pytest.mark.parametrize("method", ["standard", "l2", "none"])
def test_raw_features_are_normalised_bit_for_bit_like_the_training_data(method, tiny_store):
    data = load_conversations(tiny_store, normalise=method)
    model = build_model({"name": "mlp", "hidden": 4}, data.dims, data.num_speakers, data.num_classes)
    predictor = StreamingPredictor(model, model_config_of("mlp"), data.dims, data.label_names, data.normalisation, data.num_speakers)
    stored = FeatureStore.open(tiny_store).load()
    index = {u: i for i, u in enumerate(stored.frame["utt_id"])}
    for conversation in data.split("test")[:1] + data.split("train")[:1]:
        for k, utt_id in enumerate(conversation.utt_ids):
            for m in data.dims:
                pushed = predictor._vector({m: stored.vectors[m][index[utt_id]]}, m, normalised=False)
                assert torch.equal(pushed, conversation.features[m][k])


def model_config_of(name: str, **extra):
    return load_train_config(None, {"model.name": name, **{f"model.{k}": v for k, v in extra.items()}}).model


def test_causal_mode_of_each_model_family():
    assert causal_mode(model_config_of("dgode", wf=0)) and not causal_mode(model_config_of("dgode"))
    assert causal_mode(model_config_of("corect", wf=0)) and not causal_mode(model_config_of("corect"))
    assert causal_mode(model_config_of("bigru", causal=True)) and not causal_mode(model_config_of("bigru"))
    assert causal_mode(model_config_of("mlp"))  # context-free: nothing to leak
    with pytest.raises(NotCausalError, match=r"model 'bigru' is not causal.*--model.causal true"):
        require_causal(model_config_of("bigru"))


def test_a_run_not_trained_causally_is_refused(tmp_path, tiny_store, capsys):
    run = tmp_path / "offline_run"
    run.mkdir()
    RunDir(run).write_config(load_train_config(None, {"model.name": "corect", "data.store": str(tiny_store)}))
    with pytest.raises(NotCausalError, match=r"model 'corect' is not causal.*model.wf=5 .*--model.wf 0"):
        StreamingPredictor.from_run(run)
    assert main(["predict", "--run", str(run), "--stream"]) == 2
    error = capsys.readouterr().err
    assert "config.yaml: model 'corect' is not causal, so it cannot stream" in error
    assert main(["predict", "--run", str(tmp_path / "nothing"), "--stream"]) == 2
    assert "not a finished run: config.yaml is missing" in capsys.readouterr().err


def test_pushed_input_is_validated(causal_runs):
    predictor = StreamingPredictor.from_run(causal_runs["corect"])
    good = {"text": np.zeros(16), "audio": np.zeros(12), "vision": np.zeros(8)}
    predictor.start("d1", speakers=["Ses01.F", "Ses01.M"])
    cases = [
        ({**good, "audio": np.zeros(11)}, "Ses01.F", r"audio features have shape \(11,\), expected \(12,\)"),
        ({"text": good["text"], "audio": good["audio"]}, "Ses01.F", "lack modality 'vision'"),
        ({**good, "video": np.zeros(3)}, "Ses01.F", r"unknown modalities \['video'\]"),
        ({**good, "text": np.full(16, np.nan)}, "Ses01.F", "text features are not finite"),
        (good, "Ses02.F", "speaker 'Ses02.F' is not a participant of dialogue d1"),
        (good, 2, "speaker index 2 of dialogue d1 is outside the 2 speakers the model knows"),
        (good, 1.5, "speaker must be an index or a name"),
    ]
    for features, speaker, message in cases:
        with pytest.raises(InputError, match=message):
            predictor.push(features, speaker)
    assert predictor.position == 0  # a refused utterance is not added to the dialogue
    predictor.push(good, "Ses01.M")
    predictor.push(good, 0)
    assert predictor._speakers == [0, 0]  # names index by first appearance, as the dataset does
    predictor.start("d2")  # no participant list: first appearance
    predictor.push(good, "Ses01.M")
    predictor.push(good, "Ses01.F")
    predictor.push(good, "Ses01.M")
    assert predictor._speakers == [0, 1, 0] and predictor.position == 3


def test_latency_summary_numbers():
    summary = latency_summary([4.0, 1.0, 3.0, 2.0])
    assert summary == {"count": 4, "mean": 2.5, "p50": 2.5, "p95": pytest.approx(3.85), "max": 4.0}
    assert math.isnan(latency_summary([])["mean"])


def test_cli_streams_verifies_and_summarises(causal_runs, tiny_store, tmp_path, capsys):
    out = tmp_path / "predictions.csv"
    code = main(["predict", "--run", str(causal_runs["corect"]), "--stream", "--verify", "--limit", "2", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    frame = pd.read_csv(out, keep_default_na=False)
    data = load_conversations(tiny_store)
    first_two = data.split("test")[:2]
    assert len(frame) == sum(len(c) for c in first_two) == 93
    assert frame["utt_id"].tolist() == [u for c in first_two for u in c.utt_ids]
    assert (frame["predicted"] == frame["batch_label"]).all()
    assert (frame["latency_ms"] > 0).all()
    assert "latency per utterance (ms)" in printed and "mean " in printed and "p95 " in printed
    assert f"0 of {len(frame)}" in printed  # streaming differs from batch causal nowhere
    assert frame["utt_id"].iat[0] in printed  # one line per utterance


def test_cli_batch_mode_predicts_whole_dialogues(causal_runs, tmp_path, capsys):
    run = causal_runs["dgode"]
    trainer, _ = load_run(run)
    dialog = trainer.data.split("test")[1]
    out = tmp_path / "batch.csv"
    assert main(["predict", "--run", str(run), "--dialog", f"[{dialog.dialog_id}]", "--quiet", "--out", str(out)]) == 0
    frame = pd.read_csv(out, keep_default_na=False)
    evaluated = trainer.evaluate([dialog])
    assert frame["predicted"].tolist() == [trainer.data.label_names[p] for p in evaluated.predictions]
    assert "latency" not in capsys.readouterr().out
    assert main(["predict", "--run", str(run), "--dialog", "[Ses09X_nothing]"]) == 2
    assert "dialogue(s) ['Ses09X_nothing'] not in the store" in capsys.readouterr().err


def test_cli_predicts_from_a_registered_model_as_from_its_run(causal_runs, tiny_store, tmp_path, capsys, monkeypatch):
    """`predict --model models:/NAME/1` (weights and config from the registry, nothing unpickled)
    gives the run directory's predictions, batch and streamed."""
    import pickle

    import mlflow

    from dgnode.tracking.runs import ensure_experiment, tracked_run

    run_dir = RunDir(causal_runs["dgode"])
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with tracked_run(uri, ensure_experiment(uri, "predict-model")) as run:
        _, version = run.log_model(run_dir.read_config(), run_dir.load_model(), load_conversations(tiny_store).normalisation,
                                   registered_name="causal-dgode")
    assert version == "1"
    # Only --tracking_uri may lead to the model, not MLflow's process-wide URI (restored after).
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", "sqlite:////nonexistent/mlflow.db")

    def refuse(*args, **kwargs):
        raise AssertionError("something was unpickled")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    # The registered model carries the run's normalisation: nothing is refitted (the warning
    # an older checkpoint gets is an error here).
    import warnings

    from dgnode.training.provenance import StoreChangedWarning

    warnings.simplefilter("error", StoreChangedWarning)
    for mode in ([], ["--stream", "--limit", "2"]):
        by_run, by_model = tmp_path / f"run{len(mode)}.csv", tmp_path / f"model{len(mode)}.csv"
        assert main(["predict", "--run", str(run_dir.path), "--quiet", "--out", str(by_run), *mode]) == 0
        assert main(["predict", "--model", "models:/causal-dgode/1", "--tracking_uri", uri, "--quiet",
                     "--out", str(by_model), *mode]) == 0
        expected, got = pd.read_csv(by_run, keep_default_na=False), pd.read_csv(by_model, keep_default_na=False)
        columns = [c for c in expected.columns if c != "latency_ms"]
        assert len(got) == len(expected) > 0
        pd.testing.assert_frame_equal(got[columns], expected[columns], check_exact=True)
    assert "predict --stream models:/causal-dgode/1 (dgode)" in capsys.readouterr().out
    assert main(["predict", "--model", "models:/causal-dgode/7", "--tracking_uri", uri]) == 2
    assert "cannot load model models:/causal-dgode/7" in capsys.readouterr().err
