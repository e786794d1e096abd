"""The main job on MELD (`make demo DATASET=meld`): generated release, scan, extraction, search."""

from __future__ import annotations

import pytest

from dgnode.corpus.synth_plan import SynthConfig
from dgnode.errors import InputError
from dgnode.pipeline.run import PipelineConfig, run_pipeline
from dgnode.tuning.settings import TuneSettings


def test_dataset_sets_the_generated_corpus_and_a_conflict_is_an_error():
    assert PipelineConfig(dataset="meld").synth_config().dataset == "meld"
    assert PipelineConfig().synth_config().dataset == "iemocap"
    assert PipelineConfig(synth=SynthConfig(dataset="meld")).synth_config().dataset == "meld"
    with pytest.raises(InputError, match="--dataset iemocap and --synth.dataset meld disagree"):
        PipelineConfig(dataset="iemocap", synth=SynthConfig(dataset="meld")).synth_config()


def test_extract_overrides_reach_the_extraction_and_the_pipeline_keeps_its_own():
    from dgnode.options import ConfigError
    from dgnode.pipeline.run import _extract_config

    config = PipelineConfig(modalities=["text", "audio"], extract_overrides={"num_actors": 2, "max_batch_size": 8,
                                                                             "media.audio.clips_per_video": 2})
    extract = _extract_config(config, manifest="s3://b/scan/manifest.parquet", store="s3://b/features-tiny",
                              model="tiny")
    assert (extract.num_actors, extract.max_batch_size, extract.media.audio.clips_per_video) == (2, 8, 2)
    assert (extract.manifest, extract.store, extract.model, extract.modalities) == (
        "s3://b/scan/manifest.parquet", "s3://b/features-tiny", "tiny", ["text", "audio"])
    with pytest.raises(InputError, match="extract_overrides: model, store are set by the pipeline"):
        _extract_config(PipelineConfig(extract_overrides={"store": "x", "model": "huge"}), "", "", "tiny")
    with pytest.raises(ConfigError, match="num_actorz"):
        _extract_config(PipelineConfig(extract_overrides={"num_actorz": 2}), "", "", "tiny")


@pytest.mark.slow
def test_the_main_job_runs_on_a_generated_meld_release(ray_local, tmp_path):
    config = PipelineConfig(
        workdir=str(tmp_path / "work"), dataset="meld", modalities=["text"], baseline_config=None,
        synth=SynthConfig(dataset="meld", utterances_per_dialogue=(1, 2), utterance_seconds=(0.4, 0.8),
                          overlong_seconds=36.0),
        train_overrides={"train.epochs": 2, "model.hidden": 16},
        tune=TuneSettings(trials=1, epochs=2, max_concurrent=1, experiment="dgnode-pipeline"),
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
    )
    result = run_pipeline(config, progress=False)
    work = tmp_path / "work"
    assert result.corpus_root == work / "corpus-meld" and (work / "corpus-meld" / "MELD.Raw").is_dir()
    assert result.manifest == work / "scan-meld" / "manifest.parquet" and result.store == work / "features-tiny-meld"
    assert result.scan["dataset"] == "meld" and result.label_names[0] == "neutral" and len(result.label_names) == 7
    # Text only: every utterance is embedded, the two without a clip too.
    assert (result.extraction["stored"], result.extraction["failed"]) == (result.scan["utterances"], 0)
    assert len(result.search.trials) == 1 and result.search.test is not None

    from mlflow import MlflowClient

    assert MlflowClient(result.tracking_uri).get_experiment_by_name("dgnode-pipeline-meld") is not None
