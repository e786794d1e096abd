"""Scanning raw MELD releases: exact manifest rows and rejects, and every trap of the real release."""

from __future__ import annotations

import io
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from dgnode.corpus import rejects as R
from dgnode.corpus.detect import detect_dataset, scan_release
from dgnode.corpus.manifest import load_manifest, load_rejects
from dgnode.corpus.meld_scan import scan_meld, utterance_span
from dgnode.corpus.synth import SynthConfig, synthesize_corpus
from dgnode.errors import DgnodeError, InputError


def _counts(rejects: pd.DataFrame) -> dict[str, int]:
    return dict(sorted(Counter(rejects["reason"]).items()))


def test_scan_gives_exactly_the_planned_rows_and_rejects(meld_release):
    summary, scan = meld_release.summary, meld_release.scan
    pd.testing.assert_frame_equal(scan.manifest, summary.expected_manifest())
    assert _counts(scan.rejects) == summary.expected_rejects()
    # Every trap of the real release is in this one.
    assert set(summary.expected_rejects()) >= {
        R.CP1252_TEXT, R.ONE_DIGIT_HOUR, R.SR_NO_GAP, R.OVERLAPPING_SPAN, R.SHORT_SPAN, R.MISSING_CLIP,
        R.CORRUPT_CLIP, R.CLIP_WITHOUT_ROW, R.PREFIXED_CLIP, R.DUPLICATE_CLIP, R.OVERLONG_CLIP, R.MACOS_JUNK}
    manifest = load_manifest(meld_release.manifest_path)  # the IEMOCAP contract, checked on load
    assert manifest.attrs["dataset"] == "meld" and manifest.attrs["label_scheme"] == "meld7"
    assert manifest.attrs["label_names"] == ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]
    assert _counts(load_rejects(meld_release.manifest_path.parent)) == summary.expected_rejects()
    assert scan.summary()["utterances"] == len(manifest) and scan.summary()["without_video"] == 2


def test_every_trap_is_handled_as_documented(meld_release):
    manifest = meld_release.scan.manifest.set_index("utt_id")
    rejects = meld_release.scan.rejects

    def reject_paths(reason):
        return sorted(Path(p).name for p in rejects.loc[rejects["reason"] == reason, "path"])

    # dia110_utt7 is in the dev CSV without a clip; train dia125_utt3 is corrupt: both kept, no video.
    for utt in ("dev_dia110_utt7", "train_dia125_utt3"):
        assert pd.isna(manifest.loc[utt, "video_path"]) and pd.notna(manifest.loc[utt, "label"])
    missing = rejects[rejects["reason"] == R.MISSING_CLIP].iloc[0]
    assert Path(missing["path"]).name == "dev_sent_emo.csv" and missing["utt_id"] == "dev_dia110_utt7"
    assert reject_paths(R.CORRUPT_CLIP) == ["dia125_utt3.mp4"]
    # Clips of no row are not read; Utterance_ID gaps are no missing utterances (order has no gap).
    assert reject_paths(R.CLIP_WITHOUT_ROW) == ["dia108_utt2.mp4", "dia49_utt4.mp4", "dia49_utt5.mp4",
                                                "dia66_utt10.mp4", "dia66_utt9.mp4"]
    dia49 = meld_release.scan.manifest[meld_release.scan.manifest["dialog_id"] == str(1039 + 49)]
    assert dia49["utt_id"].tolist() == ["dev_dia49_utt0", "dev_dia49_utt1", "dev_dia49_utt2", "dev_dia49_utt3",
                                        "dev_dia49_utt6"] and dia49["order"].tolist() == [0, 1, 2, 3, 4]
    # final_videos_test: used when alone, not read beside its unprefixed twin.
    assert Path(manifest.loc["test_dia101_utt0", "video_path"]).name == "final_videos_testdia101_utt0.mp4"
    assert Path(manifest.loc["test_dia101_utt1", "video_path"]).name == "dia101_utt1.mp4"
    assert reject_paths(R.DUPLICATE_CLIP) == ["final_videos_testdia101_utt1.mp4"]
    # Overlong clips (36 s here): cut to the CSV span, or to 30 s where the span is as long.
    cut = {Path(p).name: d for p, d in rejects.loc[rejects["reason"] == R.OVERLONG_CLIP, ["path", "detail"]].values}
    assert sorted(cut) == ["dia220_utt0.mp4", "dia309_utt0.mp4", "dia38_utt4.mp4"]
    assert manifest.loc["test_dia38_utt4", "end_s"] == manifest.loc["test_dia220_utt0", "end_s"] == 30.0
    planned = {u.utterance: u for d in meld_release.summary.dialogues if (d.split, d.dialogue) == ("train", 309)
               for u in d.utterances}
    span = planned[0].span_s
    assert manifest.loc["train_dia309_utt0", "end_s"] == (span if span >= 0.2 else 30.0)
    assert "cut to" in cut["dia309_utt0.mp4"]
    # The CSVs' cp1252 bytes and C1 controls are text again; no mojibake survives.
    texts = " ".join(manifest["text"])
    assert "\u2019" in texts and not any(c in texts for c in ("\u0092", "\u00c2", "\u00a0", "\ufffd"))
    # MELD rows in the IEMOCAP contract.
    assert set(manifest["speaker_side"]) == {"full"} and manifest["wav_path"].isna().all()
    assert (manifest["start_s"] == 0.0).all() and manifest.loc["dev_dia110_utt7", "dialog_id"] == "1149"
    assert set(manifest["split"]) == {"train", "valid", "test"} and manifest["words"].map(len).eq(0).all()


def test_strict_scan_stops_at_the_first_trap_with_file_and_line(meld_release):
    rejects = meld_release.scan.rejects
    first = rejects[~rejects["reason"].isin(R.SKIP_REASONS)].iloc[0]
    where = f"{first['path']}:{int(first['line'])}: " if pd.notna(first["line"]) else f"{first['path']}: "
    with pytest.raises(InputError) as error:
        scan_meld(meld_release.summary.out_dir, strict=True)
    assert str(error.value) == f"{where}{first['reason']}: {first['detail']}"


def test_archived_release_is_unpacked_once_outside_the_release(tmp_path):
    summary = synthesize_corpus(tmp_path / "raw", SynthConfig(
        dataset="meld", archives=True, utterances_per_dialogue=(1, 1), utterance_seconds=(0.3, 0.6), overlong_seconds=36.0))
    assert sorted(p.name for p in summary.release_dir.iterdir()) == [
        ".DS_Store", "dev.tar.gz", "dev_sent_emo.csv", "test.tar.gz", "test_sent_emo.csv", "train.tar.gz",
        "train_sent_emo.csv"]
    unpack = tmp_path / "scan" / "unpacked"
    first = scan_release(tmp_path / "raw", labels="meld7", unpack_dir=unpack)
    pd.testing.assert_frame_equal(first.manifest, summary.expected_manifest(unpack_dir=unpack))
    assert _counts(first.rejects) == summary.expected_rejects()
    clip = Path(first.manifest["video_path"].dropna().iloc[0])
    stamp = clip.stat().st_mtime_ns
    again = scan_release(tmp_path / "raw", unpack_dir=unpack)  # reuses the unpacked clips, same rejects
    assert clip.stat().st_mtime_ns == stamp and _counts(again.rejects) == summary.expected_rejects()
    # Unpacked beside its archive (as users do): the folder is read, the archive skipped.
    shutil.copytree(unpack / "dev" / "dev_splits_complete", summary.release_dir / "dev_splits_complete")
    beside = scan_release(tmp_path / "raw", unpack_dir=tmp_path / "other")
    assert _counts(beside.rejects)[R.ARCHIVE_UNPACKED] == 1 and not (tmp_path / "other" / "dev").exists()
    assert not any(summary.release_dir.glob("*/.*.partial-*"))


def test_unsafe_and_broken_archives_drop_only_themselves(tmp_path):
    summary = synthesize_corpus(tmp_path / "raw", SynthConfig(dataset="meld", video=False, junk=False))
    release = summary.release_dir
    with tarfile.open(release / "train.tar.gz", "w:gz") as tar:
        for name, data in (("train_splits/dia0_utt0.mp4", b"x"), ("../escape.mp4", b"x"), ("/abs/evil.mp4", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("train_splits/link.mp4")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    (release / "dev.tar.gz").write_bytes(b"not a gzip file at all")
    result = scan_meld(tmp_path / "raw", unpack_dir=tmp_path / "unpacked")
    counts = _counts(result.rejects)
    assert counts[R.UNSAFE_ARCHIVE_MEMBER] == 3 and counts[R.UNREADABLE] == 1 and counts[R.MISSING_FOLDER] == 1
    assert not (tmp_path / "escape.mp4").exists() and not (tmp_path / "unpacked" / "train" / "train_splits" / "link.mp4").exists()
    assert len(result.manifest) == sum(len(d.utterances) for d in summary.dialogues)  # every row kept
    dev = result.manifest[result.manifest["split"] == "valid"]
    assert dev["video_path"].isna().all() and len(dev)


def test_missing_csv_and_missing_clip_folder(tmp_path):
    summary = synthesize_corpus(tmp_path / "raw", SynthConfig(dataset="meld", video=False))
    (summary.release_dir / "test_sent_emo.csv").unlink()
    result = scan_meld(tmp_path / "raw")
    counts = _counts(result.rejects)
    assert counts[R.MISSING_CSV] == 1 and counts[R.MISSING_FOLDER] == 2  # train and dev: CSVs without clips
    assert set(result.manifest["split"]) == {"train", "valid"} and result.manifest["video_path"].isna().all()
    for name in ("train_sent_emo.csv", "dev_sent_emo.csv"):
        (summary.release_dir / name).unlink()
    with pytest.raises(InputError, match="no MELD CSV"):
        scan_meld(tmp_path / "raw")


@pytest.mark.parametrize("clip_s, span_s, end_s, cut", [
    (3.2, 3.0, 3.2, False),      # a clip a little longer than its span is read whole
    (240.0, 3.0, 3.0, True),     # overlong clip: cut to the CSV span
    (240.0, 235.0, 30.0, True),  # the span is as long: cut to the bound
    (2.0, 0.05, 2.0, False),     # a span under 200 ms says nothing: the clip's length
    (40.0, None, 30.0, True),    # no readable span: the bound
])
def test_utterance_span(clip_s, span_s, end_s, cut):
    span = utterance_span(clip_s, span_s)
    assert span.end_s == end_s and (span.cut is not None) == cut


def test_dataset_detection_and_label_schemes(meld_release, tmp_path):
    from dgnode.corpus.synth import SynthConfig as Config

    assert detect_dataset(meld_release.summary.out_dir) == "meld"
    synthesize_corpus(tmp_path / "iemocap", Config(video=False, dialogs=5))
    assert detect_dataset(tmp_path / "iemocap") == "iemocap"
    both = tmp_path / "both"
    (both / "IEMOCAP" / "Session1").mkdir(parents=True)
    (both / "train_sent_emo.csv").write_text("x")
    with pytest.raises(InputError, match="both an IEMOCAP release .* and a MELD one"):
        detect_dataset(both)
    (tmp_path / "neither" / "videos").mkdir(parents=True)
    with pytest.raises(InputError, match="no IEMOCAP Session1..5 folder and no MELD .*; pass --dataset iemocap or"):
        detect_dataset(tmp_path / "neither")
    with pytest.raises(DgnodeError, match="label scheme 'meld7' is for meld, not iemocap"):
        scan_release(tmp_path / "iemocap", labels="meld7")
    with pytest.raises(DgnodeError, match="'merc6' is for iemocap, not meld; use one of meld7, sentiment3"):
        scan_release(meld_release.summary.out_dir, labels="merc6")
    sentiment = scan_release(meld_release.summary.out_dir, labels="sentiment3").manifest.set_index("utt_id")
    expected = meld_release.summary.expected_manifest("sentiment3").set_index("utt_id")
    assert sentiment["label_code"].equals(expected["label_code"]) and set(sentiment["label_code"]) <= {
        "neutral", "positive", "negative"}
    assert sentiment["label"].tolist() == [["neutral", "positive", "negative"].index(c) for c in sentiment["label_code"]]
    archive = tmp_path / "MELD.Raw.tar.gz"
    archive.write_bytes(b"")
    with pytest.raises(InputError, match="unpack it first"):
        scan_meld(archive)
