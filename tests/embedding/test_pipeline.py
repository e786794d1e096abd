"""End to end on local Ray: synthetic corpus -> Ray Data extraction (tiny ImageBind) -> feature store."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from dgnode.command import run_command
from dgnode.corpus import synth_media
from dgnode.corpus.manifest import load_manifest
from dgnode.embedding.cli import COMMANDS
from dgnode.embedding.config import ExtractConfig
from dgnode.embedding.pipeline import run_extraction
from dgnode.features.store import FeatureStore
from dgnode.media.config import CLIP_MEAN, CLIP_STD, MediaConfig
from dgnode.media.utterance import preprocess_batch

from .conftest import BROKEN, FALLBACK, GOOD

pytestmark = pytest.mark.slow


def main(argv: list[str]) -> int:
    return run_command(COMMANDS, argv)


def load_provenance(store: str):
    return FeatureStore.open(store).read_provenance()


class Interrupted(Exception):
    pass


@dataclasses.dataclass
class Runs:
    config: ExtractConfig
    first_batch_ids: list[str]
    stored_after_interrupt: set[str]
    resumed: object
    rerun: object


@pytest.fixture(scope="module")
def runs(ray_local, mini_corpus, tmp_path_factory) -> Runs:
    store = tmp_path_factory.mktemp("extract") / "features"
    config = ExtractConfig(
        manifest=str(mini_corpus.manifest_path), store=str(store), model="tiny",
        max_batch_size=4, decode_batch_size=2, decode_tasks=2, progress=False,
    )
    first: list = []

    def stop_after_first_batch(report):
        first.append(report)
        raise Interrupted

    with pytest.raises(Interrupted):
        run_extraction(config, on_batch=stop_after_first_batch)
    stored_after_interrupt = FeatureStore.open(store).stored_utt_ids()
    # The resumed run also simulates out-of-memory errors above 2 items per forward.
    resumed = run_extraction(dataclasses.replace(config, simulate_oom_above=2))
    # Retrying the failures is the driver's logic, the same for both engines: skip Ray's start-up.
    rerun = run_extraction(config, engine="process")
    return Runs(config, first[0].utt_ids, stored_after_interrupt, resumed, rerun)


def _expected_stored(mini_corpus) -> set[str]:
    return set(mini_corpus.manifest.loc[mini_corpus.manifest["dialog_id"] != BROKEN, "utt_id"])


def test_interrupted_run_keeps_its_batch_and_resuming_stores_every_utterance_once(runs, mini_corpus):
    assert len(runs.first_batch_ids) == 4
    assert runs.stored_after_interrupt == set(runs.first_batch_ids) & _expected_stored(mini_corpus)
    stored = FeatureStore.open(runs.config.store).load()
    ids = stored.frame["utt_id"].tolist()
    assert len(ids) == len(set(ids)) == 10
    assert set(ids) == _expected_stored(mini_corpus)
    # Resume: what the interrupted run stored was skipped, the rest requested.
    assert runs.resumed.already_stored == len(runs.stored_after_interrupt)
    assert runs.resumed.requested == 15 - len(runs.stored_after_interrupt)
    assert runs.resumed.stored == 10 - len(runs.stored_after_interrupt) and runs.resumed.duplicates == 0
    # A third run only retries the failed utterances and stores nothing twice.
    assert (runs.rerun.already_stored, runs.rerun.requested, runs.rerun.stored, runs.rerun.failed) == (10, 5, 0, 5)


def test_store_rows_carry_manifest_keys_and_raw_vectors(runs, mini_corpus):
    stored = FeatureStore.open(runs.config.store).load()
    manifest = mini_corpus.manifest.set_index("utt_id")
    frame = stored.frame.set_index("utt_id")
    for column in ("dialog_id", "order", "speaker", "split"):
        assert frame[column].tolist() == manifest.loc[frame.index, column].tolist()
    assert frame["label"].astype("Int64").tolist() == manifest.loc[frame.index, "label"].astype("Int64").tolist()
    for modality in ("text", "audio", "vision"):
        vectors = stored.vectors[modality]
        assert vectors.shape == (10, 32) and vectors.dtype == np.float32 and np.isfinite(vectors).all()
    for modality in ("text", "audio"):
        assert len(np.unique(stored.vectors[modality].round(5), axis=0)) == 10  # one vector per utterance
    # The synthetic halves are flat colours: vision vectors group by the speaker's side.
    side = manifest.loc[frame.index, "speaker_side"].to_numpy()
    vision = stored.vectors["vision"]
    spread = max(np.abs(vision[side == s] - vision[side == s][0]).max() for s in ("left", "right"))
    gap = np.abs(vision[side == "left"][0] - vision[side == "right"][0]).max()
    assert gap > 10 * spread
    # Raw ImageBind outputs, not renormalised: per clip a unit vector (x 20 for audio), then the
    # mean over clips, whose norm is at most the scale and equals it only for identical clips.
    for modality, scale in (("audio", 20.0), ("vision", 1.0)):
        norms = np.linalg.norm(stored.vectors[modality], axis=1)
        assert np.all(norms <= scale * (1 + 1e-5)) and np.all(norms > 0.9 * scale)
    meta = stored.metadata
    assert meta.model == "imagebind_tiny(random-init, seed=0)" and meta.checkpoint_sha256 is None
    assert meta.dims == {"text": 32, "audio": 32, "vision": 32}
    assert meta.label_names == mini_corpus.label_names
    assert meta.preprocessing["video"]["crop"] == "speaker" and meta.preprocessing["audio"]["num_mel_bins"] == 128
    assert meta.preprocessing["vision_transport_dtype"] == "float16"


def test_unreadable_media_give_failure_rows_and_the_rest_is_stored(runs, mini_corpus):
    failures = FeatureStore.open(runs.config.store).load_failures()
    broken = mini_corpus.manifest[mini_corpus.manifest["dialog_id"] == BROKEN]
    expected = {(u, "vision") for u in broken["utt_id"]} | {(mini_corpus.broken_utt, "audio")}
    # Exactly one row per (utterance, modality): the re-run replaced the earlier attempt's rows.
    assert sorted(zip(failures["utt_id"], failures["modality"])) == sorted(expected)
    avi = broken["video_path"].iloc[0]
    vision = failures[failures["modality"] == "vision"]
    # Cut to 1%, the AVI still opens but holds one frame: every segment starts after its end.
    assert (vision["path"] == avi).all() and vision["error"].str.startswith(f"{avi}: ValueError: segment [").all()
    assert vision["error"].str.contains("starts after the video's last frame").all()
    assert vision["error"].str.contains("truncated video or wrong times").all()
    audio = failures[failures["modality"] == "audio"].iloc[0]
    assert "wav file missing" in audio["error"] and f"{avi}: audio fallback failed" in audio["error"]
    assert runs.resumed.failures_by_modality == {"vision": 5, "audio": 1}


def test_missing_wav_falls_back_to_the_dialogue_video_audio(runs, mini_corpus):
    provenance = load_provenance(runs.config.store).drop_duplicates("utt_id", keep="last").set_index("utt_id")
    assert provenance.loc[mini_corpus.fallback_utt, "audio_source"] == "avi"
    assert "wav file missing" in provenance.loc[mini_corpus.fallback_utt, "audio_notes"]
    others = _expected_stored(mini_corpus) - {mini_corpus.fallback_utt}
    assert (provenance.loc[sorted(others), "audio_source"] == "wav").all()
    assert mini_corpus.fallback_utt in FeatureStore.open(runs.config.store).stored_utt_ids()


def test_frames_used_lie_inside_each_utterances_span(runs, mini_corpus):
    provenance = load_provenance(runs.config.store).set_index("utt_id")
    manifest = mini_corpus.manifest.set_index("utt_id")
    for utt in sorted(_expected_stored(mini_corpus)):
        row = provenance.loc[utt]
        times = np.asarray(row["frame_times"], dtype=float)
        assert len(times) == 10 and not np.any(row["frames_clamped"])
        start, end = manifest.loc[utt, "start_s"], manifest.loc[utt, "end_s"]
        assert np.all(times >= start - 1e-9) and np.all(times < end), (utt, times, start, end)


def test_simulated_oom_in_the_ray_actor_loses_nothing(runs):
    assert runs.resumed.oom_retries > 0
    assert runs.resumed.batch_plan == {"text": 4, "audio": 4, "vision": 4}
    assert runs.resumed.failed == 5 and runs.resumed.failures_by_modality == {"vision": 5, "audio": 1}


def test_single_process_loop_gives_the_ray_vectors(runs, mini_corpus, tmp_path):
    config = dataclasses.replace(runs.config, store=str(tmp_path / "plain"), limit=6)
    summary = run_extraction(config, engine="process")
    assert (summary.requested, summary.stored + summary.failed) == (6, 6)
    plain = FeatureStore.open(config.store).load()
    ray_rows = FeatureStore.open(runs.config.store).load()
    position = {u: i for i, u in enumerate(ray_rows.frame["utt_id"])}
    rows = [position[u] for u in plain.frame["utt_id"]]
    for modality in ("text", "audio", "vision"):
        np.testing.assert_allclose(plain.vectors[modality], ray_rows.vectors[modality][rows], atol=1e-5)


def test_each_speakers_video_comes_from_their_half(mini_corpus):
    rows = mini_corpus.manifest[mini_corpus.manifest["dialog_id"].isin([GOOD, FALLBACK])]
    rows = pd.concat([rows[rows["speaker_side"] == side].head(2) for side in ("left", "right")])
    out = preprocess_batch(rows, ["vision"], MediaConfig())
    mean = np.asarray(CLIP_MEAN).reshape(3, 1, 1, 1)
    std = np.asarray(CLIP_STD).reshape(3, 1, 1, 1)
    for i, side in enumerate(rows["speaker_side"]):
        top_crop = out["vision"][i, 0].astype(np.float64)  # (3, 2, 224, 224): above the frame clock
        colour = ((top_crop * std + mean) * 255).reshape(3, -1).mean(axis=1)
        expected = synth_media.LEFT_HALF_RGB if side == "left" else synth_media.RIGHT_HALF_RGB
        np.testing.assert_allclose(colour, expected, atol=6)
        # The speaker is on the left when the utterance's speaker letter is the dialogue's mocap letter.
        utt = rows["utt_id"].iloc[i]
        assert (side == "left") == (utt[-4] == utt[5])


def test_cli_extract_and_its_errors(mini_corpus, tmp_path, capsys):
    store = tmp_path / "cli_store"
    code = main([
        "extract", "--manifest", str(mini_corpus.manifest_path), "--store", str(store), "--model", "tiny",
        "--modalities", "[text,audio]", "--limit", "3", "--engine", "process", "--progress", "false", "--json",
    ])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["requested"], summary["stored"], summary["failed"]) == (3, 3, 0)
    assert FeatureStore.open(store).metadata.dims == {"text": 32, "audio": 32}

    missing = tmp_path / "nowhere" / "manifest.parquet"
    assert main(["extract", "--manifest", str(missing), "--store", str(store), "--model", "tiny"]) == 2
    assert f"{missing}: manifest not found" in capsys.readouterr().err
    assert main(["extract", "--manifest", str(mini_corpus.manifest_path), "--store", str(tmp_path / "s"), "--model", "huge"]) == 2
    assert "--model huge needs --checkpoint" in capsys.readouterr().err
    # The store was made with text+audio: asking for vision into it is refused, naming the store.
    assert main(["extract", "--manifest", str(mini_corpus.manifest_path), "--store", str(store), "--model", "tiny",
                 "--engine", "process"]) == 2
    assert f"{store}/metadata.json: existing feature store was made differently" in capsys.readouterr().err


def test_meld_clips_extract_through_the_same_ray_pipeline(meld_release, meld_store, tmp_path):
    """A generated mini-MELD release, scanned, on local Ray with the tiny model: one row per manifest
    utterance that has a clip; the two without one (dia110_utt7, the corrupt dia125_utt3) are failure
    rows of audio and vision, and a text-only run stores them too."""
    store_path, summary = meld_store
    manifest = load_manifest(meld_release.manifest_path)
    with_clip = set(manifest.loc[manifest["video_path"].notna(), "utt_id"])
    clipless = set(manifest["utt_id"]) - with_clip
    assert clipless == {"dev_dia110_utt7", "train_dia125_utt3"}
    store = FeatureStore.open(store_path)
    stored = store.load()
    assert sorted(stored.frame["utt_id"]) == sorted(with_clip) and len(stored.frame) == len(with_clip)
    assert (summary.stored, summary.failed) == (len(with_clip), 2)
    frame = stored.frame.set_index("utt_id")
    keys = manifest.set_index("utt_id").loc[frame.index]
    for column in ("dialog_id", "order", "speaker", "split"):
        assert frame[column].tolist() == keys[column].tolist()
    assert frame["label"].astype("Int64").tolist() == keys["label"].astype("Int64").tolist()
    failures = store.load_failures()
    assert sorted(zip(failures["utt_id"], failures["modality"])) == sorted(
        (u, m) for u in clipless for m in ("audio", "vision"))
    assert store.metadata.extra["dataset"] == "meld" and store.metadata.label_names[0] == "neutral"
    # Audio from each clip's own track; frames of the overlong clips inside their 30-second cut.
    provenance = store.read_provenance().drop_duplicates("utt_id", keep="last").set_index("utt_id")
    assert set(provenance.loc[sorted(with_clip), "audio_source"]) == {"avi"}
    for utt in ("test_dia38_utt4", "test_dia220_utt0"):
        times = np.asarray(provenance.loc[utt, "frame_times"], dtype=float)
        assert times.max() < 30.0 and keys.loc[utt, "end_s"] == 30.0
    text_only = run_extraction(ExtractConfig(manifest=str(meld_release.manifest_path), store=str(tmp_path / "text"),
                                             model="tiny", modalities=["text"], progress=False), engine="process")
    assert (text_only.stored, text_only.failed) == (len(manifest), 0)
