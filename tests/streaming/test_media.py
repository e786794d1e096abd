"""Streaming from raw media: utterance media -> the store's own vectors -> the causal model."""

from __future__ import annotations

import numpy as np
import pytest

from dgnode.errors import InputError


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """A mini corpus extracted with the tiny ImageBind (in-process engine) and a causal run on it."""
    from dgnode.corpus.scan import scan_corpus, write_scan
    from dgnode.corpus.synth import SynthConfig, synthesize_corpus
    from dgnode.embedding.config import ExtractConfig
    from dgnode.embedding.pipeline import run_extraction
    from dgnode.features.dataset import load_conversations
    from dgnode.training.config import load_train_config
    from dgnode.training.loop import fit

    root = tmp_path_factory.mktemp("media_stream")
    synthesize_corpus(root / "raw", SynthConfig(seed=1, utterances_per_dialogue=(8, 8), utterance_seconds=(0.8, 1.2)))
    manifest_path = write_scan(scan_corpus(root / "raw"), root / "scan")["manifest"]
    store = root / "store"
    summary = run_extraction(ExtractConfig(manifest=str(manifest_path), store=str(store), model="tiny", progress=False), engine="process")
    assert summary.failed == 0
    overrides = {"data.store": str(store), "model.hidden": 16, "model.wf": 0, "model.ode.method": "rk4",
                 "model.ode.step_size": 0.5, "train.epochs": 1, "train.batch_size": 2, "report.plots": False}
    fit(load_train_config(None, overrides), load_conversations(store), root / "run", progress=False)
    return manifest_path, store, root / "run"


@pytest.mark.slow
def test_media_stream_reproduces_stored_vectors_and_predictions(extracted):
    import pandas as pd

    from dgnode.features.store import FeatureStore
    from dgnode.streaming.media import MediaEncoder
    from dgnode.streaming.predictor import StreamingPredictor

    manifest_path, store_path, run = extracted
    manifest = pd.read_parquet(str(manifest_path))
    stored = FeatureStore.open(store_path).load()
    dialog = stored.frame.loc[stored.frame["split"] == "test", "dialog_id"].iloc[0]
    rows = manifest[manifest["dialog_id"] == dialog].sort_values("order")
    index = {utt: i for i, utt in enumerate(stored.frame["utt_id"])}

    encoder = MediaEncoder.from_store(store_path)
    from_media = StreamingPredictor.from_run(run)
    from_store = StreamingPredictor.from_run(run)
    from_media.start(dialog)
    from_store.start(dialog)
    speakers = sorted(rows["speaker"].unique())
    for _, row in rows.iterrows():
        vectors = encoder.encode(row.to_dict())
        kept = {m: stored.vectors[m][index[row["utt_id"]]] for m in stored.vectors}
        for modality, vector in vectors.items():
            np.testing.assert_allclose(vector, kept[modality], rtol=1e-4, atol=1e-4, err_msg=f"{row['utt_id']} {modality}")
        live = from_media.push(vectors, speakers.index(row["speaker"]))
        reference = from_store.push(kept, speakers.index(row["speaker"]))
        assert live.label == reference.label
        np.testing.assert_allclose(live.probabilities, reference.probabilities, atol=1e-4)


def test_media_encoder_refuses_stores_not_made_by_extraction(tmp_path):
    from dgnode.features.store import StoreMetadata
    from dgnode.streaming.media import MediaEncoder

    metadata = StoreMetadata(model="x", dims={"text": 4}, label_names=["a", "b"], source="mmgcn-pickle")
    with pytest.raises(InputError, match="not made by `dgnode extract`"):
        MediaEncoder(metadata)


@pytest.mark.slow
def test_predict_cli_streams_from_media_and_matches_batch(extracted, capsys):
    from dgnode.command import run_command
    from dgnode.streaming.cli import COMMANDS

    manifest_path, _, run = extracted
    code = run_command(COMMANDS, ["predict", "--run", str(run), "--stream", "--media", str(manifest_path), "--split", "test", "--verify", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "differ from batch causal" in out and "0 of" in out
