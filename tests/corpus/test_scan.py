"""scan_corpus on synthetic trees: exact rows, every trap, every kind of bad input."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from dgnode.corpus import rejects as R
from dgnode.corpus.manifest import MANIFEST_COLUMNS, load_manifest, load_rejects
from dgnode.corpus.scan import scan_corpus, write_scan
from dgnode.corpus.synth import SynthConfig, SynthSummary, synthesize_corpus
from dgnode.errors import InputError

# --- helpers ---------------------------------------------------------------------------------


def _values(series: pd.Series) -> list:
    return [None if not isinstance(v, list) and pd.isna(v) else v for v in series.tolist()]


def _assert_frames_equal(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(actual.columns) == list(MANIFEST_COLUMNS)
    assert len(actual) == len(expected)
    for column in MANIFEST_COLUMNS:
        assert _values(actual[column]) == _values(expected[column]), column


def _reasons(result) -> dict[str, int]:
    return dict(Counter(result.rejects["reason"]))


def _new_rejects(result, summary: SynthSummary) -> list[tuple]:
    """Rejects beyond the corpus' expected skips, as (reason, file name, line, utt_id)."""
    skips = result.rejects[~result.rejects["reason"].isin([R.MACOS_JUNK, R.XX_SEGMENT, R.COMMENT_LINE])]
    return [(r.reason, Path(r.path).name, None if pd.isna(r.line) else int(r.line), None if pd.isna(r.utt_id) else r.utt_id)
            for r in skips.itertuples()]


def _paths(summary: SynthSummary, dialog_id: str):
    dialogue = next(d for d in summary.dialogues if d.dialog_id == dialog_id)
    session = summary.session_dir(dialogue.session)
    return (dialogue, session / "dialog" / "EmoEvaluation" / f"{dialog_id}.txt",
            session / "dialog" / "transcriptions" / f"{dialog_id}.txt")


def _replace_line(path: Path, old_start: str, new: str | None, encoding: str = "utf-8") -> int:
    """Replace (or delete, ``new=None``) the line starting with ``old_start``; returns its 1-based number."""
    lines = path.read_bytes().decode(encoding).split("\n")
    index = next(i for i, line in enumerate(lines) if line.startswith(old_start))
    if new is None:
        del lines[index]
    else:
        lines[index] = new
    path.write_bytes("\n".join(lines).encode(encoding))
    return index + 1


def _without(expected: pd.DataFrame, utt_ids: set[str]) -> pd.DataFrame:
    """Expected rows without ``utt_ids``, ``order`` renumbered per dialogue."""
    kept = expected[~expected["utt_id"].isin(utt_ids)].copy()
    kept["order"] = kept.groupby("dialog_id").cumcount().astype("int32")
    return kept.reset_index(drop=True)


# --- clean corpora -----------------------------------------------------------------------------


@pytest.mark.parametrize("labels", ["merc6", "raw6", "four"])
def test_scan_reproduces_the_synthetic_manifest_exactly(media_corpus, labels):
    result = scan_corpus(media_corpus.out_dir, labels=labels)
    _assert_frames_equal(result.manifest, media_corpus.expected_manifest(labels))
    assert _reasons(result) == media_corpus.expected_rejects == {"comment-line": 6, "macos-junk": 9, "xx-segment": 6}
    summary = result.summary()
    assert (summary["sessions"], summary["dialogues"], summary["utterances"]) == (4, 6, 63)
    assert summary["label_counts"] == media_corpus.label_counts(labels)
    assert summary["without_video"] == 0 and summary["without_alignment"] == 6


def test_mini_corpus_label_counts_differ_by_scheme(media_corpus):
    counts = {labels: scan_corpus(media_corpus.out_dir, labels=labels).summary()["label_counts"]
              for labels in ("merc6", "raw6", "four")}
    assert counts == {
        "merc6": {"hap": 16, "sad": 7, "neu": 14, "ang": 5, "exc": 3, "fru": 10},
        "raw6": {"hap": 14, "sad": 7, "neu": 14, "ang": 5, "exc": 3, "fru": 10},
        "four": {"hap": 17, "sad": 7, "neu": 14, "ang": 5},
    }


def test_traps_in_the_manifest(media_corpus):
    frame = scan_corpus(media_corpus.out_dir).manifest.set_index("utt_id")
    # Speaker = last letter; side = left when it equals the marker letter after the session.
    row = frame.loc["Ses01M_impro01_F000"]
    assert (row.speaker, row.speaker_side, row.dialog_id) == ("Ses01.F", "right", "Ses01M_impro01")
    row = frame.loc["Ses01F_impro01_F000"]
    assert (row.speaker, row.speaker_side) == ("Ses01.F", "left")
    # 1b ids belong to 1b, never to script01_1.
    one = frame[frame.dialog_id == "Ses05M_script01_1"].index
    one_b = frame[frame.dialog_id == "Ses05M_script01_1b"].index
    assert len(one) and len(one_b)
    assert all(u.startswith("Ses05M_script01_1b_") for u in one_b)
    assert not any(u.startswith("Ses05M_script01_1b_") for u in one)
    # F-first blocks and out-of-order lines: order follows start time.
    for _, dialogue in frame.reset_index().groupby("dialog_id"):
        ordered = dialogue.sort_values("order")
        assert ordered["start_s"].is_monotonic_increasing
        assert ordered["order"].tolist() == list(range(len(dialogue)))
    # Noise tags stay in the text; the cp1252 line decodes; XX ids never become rows.
    assert frame["text"].str.contains(r"\[LAUGHTER\]").any()
    assert frame["text"].str.contains("caf\u00e9").sum() == 1
    assert not frame.index.str.contains("XX").any()
    # xxx with a Happiness majority is hap under merc6 only; other xxx stay unlabelled.
    xxx = frame[frame.label_code == "xxx"]
    assert (xxx[xxx.majority_category == "Happiness"]["label"] == 0).all()
    assert xxx[xxx.majority_category != "Happiness"]["label"].isna().all()
    assert set(frame[frame.label_code.isin(["sur", "fea", "dis", "oth"])]["label"].isna()) == {True}
    assert frame.loc[frame.wdseg_path.isna(), "words"].map(len).eq(0).all()
    assert frame.loc[frame.wdseg_path.notna(), "words"].map(len).gt(0).all()
    assert sorted(frame["split"].unique()) == ["test", "train", "valid"]


def test_write_and_load_round_trip(media_corpus, scratch_dir):
    result = scan_corpus(media_corpus.out_dir, labels="four")
    paths = write_scan(result, scratch_dir / "scan")
    loaded = load_manifest(scratch_dir / "scan")
    _assert_frames_equal(loaded, result.manifest)
    assert loaded.attrs["label_names"] == ["hap", "sad", "neu", "ang"]
    assert loaded.attrs["label_scheme"] == "four"
    assert loaded.attrs["corpus_root"] == str(media_corpus.out_dir.resolve())
    assert str(loaded["label"].dtype) == "Int32"
    rejects = load_rejects(paths["rejects"])
    assert list(rejects.columns) == ["path", "line", "utt_id", "reason", "detail"]
    assert len(rejects) == 21


def test_load_manifest_validates(scratch_dir, media_corpus):
    with pytest.raises(InputError, match="manifest not found"):
        load_manifest(scratch_dir)
    pd.DataFrame({"dialog_id": ["a"], "utt_id": ["b"]}).to_parquet(scratch_dir / "manifest.parquet")
    with pytest.raises(InputError, match=r"manifest.parquet: not a corpus manifest: missing column\(s\) session, speaker"):
        load_manifest(scratch_dir)
    (scratch_dir / "manifest.parquet").write_text("not parquet")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        load_manifest(scratch_dir / "manifest.parquet")


def test_nesting_depth_and_root_choice(scratch_dir):
    deep = synthesize_corpus(scratch_dir / "a" / "b" / "c", SynthConfig(seed=3, video=False, dialogs=5))
    result = scan_corpus(scratch_dir)
    _assert_frames_equal(result.manifest, deep.expected_manifest())
    assert _reasons(result) == deep.expected_rejects
    # Rooted at the release, the __MACOSX folder beside it is not seen; rooted at a session, one session.
    assert _reasons(scan_corpus(deep.release_dir))["macos-junk"] == deep.expected_rejects["macos-junk"] - 1
    session1 = scan_corpus(deep.release_dir / "Session1")
    assert set(session1.manifest["session"]) == {1}
    assert len(session1.manifest) == sum(len(d.utterances) for d in deep.dialogues if d.session == 1)


def test_duplicate_session_folder_is_rejected_once(text_corpus):
    copy = text_corpus.out_dir / "backup" / "old" / "Session1"
    shutil.copytree(text_corpus.session_dir(1), copy)
    result = scan_corpus(text_corpus.out_dir)
    _assert_frames_equal(result.manifest, text_corpus.expected_manifest())
    assert _new_rejects(result, text_corpus) == [(R.DUPLICATE_SESSION, "Session1", None, None)]


def test_crlf_everywhere_is_accepted_silently(text_corpus):
    for path in text_corpus.release_dir.rglob("*.txt"):
        path.write_bytes(path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    for path in text_corpus.release_dir.rglob("*.wdseg"):
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    result = scan_corpus(text_corpus.out_dir)
    _assert_frames_equal(result.manifest, text_corpus.expected_manifest())
    assert _reasons(result) == text_corpus.expected_rejects


def test_junk_that_looks_like_data_is_never_read(text_corpus):
    _, emo, transcription = _paths(text_corpus, "Ses01F_impro01")
    # Sidecars and a __MACOSX tree holding copies of real data under valid-looking names.
    (emo.parent / "._Ses01F_impro02.txt").write_bytes(emo.read_bytes())
    (transcription.parent / "._Ses01F_impro02.txt").write_bytes(transcription.read_bytes())
    macosx_session = text_corpus.out_dir / "__MACOSX" / "Session2"
    shutil.copytree(text_corpus.session_dir(1), macosx_session)
    (text_corpus.release_dir / ".hidden_copy").mkdir()
    shutil.copytree(text_corpus.session_dir(1), text_corpus.release_dir / ".hidden_copy" / "Session4")
    result = scan_corpus(text_corpus.out_dir)
    _assert_frames_equal(result.manifest, text_corpus.expected_manifest())
    expected = dict(text_corpus.expected_rejects)
    expected["macos-junk"] += 2
    expected["hidden-entry"] = 1
    assert _reasons(result) == expected


def test_missing_wdseg_is_not_an_error(text_corpus):
    dialogue, _, _ = _paths(text_corpus, "Ses03M_impro05a")
    target = dialogue.utterances[2]
    text_corpus.wdseg_path(dialogue, target).unlink()
    result = scan_corpus(text_corpus.out_dir, strict=True)
    row = result.manifest.set_index("utt_id").loc[target.utt_id]
    assert pd.isna(row.wdseg_path) and row.words == []
    assert result.summary()["without_alignment"] == 7


# --- bad input: one reject each, neighbours intact -----------------------------------------------


def test_malformed_summary_line(text_corpus):
    dialogue, emo, _ = _paths(text_corpus, "Ses03M_impro05a")
    u = dialogue.utterances[0]
    line = _replace_line(emo, f"[{u.start_s:.4f} - ", f"[{u.start_s:.4f} {u.end_s:.4f}]\t{u.utt_id}\t{u.code}\t[1, 2, 3]")
    result = scan_corpus(text_corpus.out_dir)
    assert _new_rejects(result, text_corpus) == [(R.MALFORMED_SUMMARY_LINE, emo.name, line, u.utt_id)]
    _assert_frames_equal(result.manifest, _without(text_corpus.expected_manifest(), {u.utt_id}))
    with pytest.raises(InputError) as caught:
        scan_corpus(text_corpus.out_dir, strict=True)
    assert str(caught.value).startswith(f"{emo.resolve()}:{line}: malformed-summary-line: expected '[start - end]")


def test_ids_matching_no_dialogue(text_corpus):
    dialogue, emo, transcription = _paths(text_corpus, "Ses01F_impro01")
    u, v = dialogue.utterances[1], dialogue.utterances[2]
    foreign = u.utt_id.replace("impro01", "impro02")
    emo_line = _replace_line(emo, f"[{u.start_s:.4f} - ",
                             f"[{u.start_s:.4f} - {u.end_s:.4f}]\t{foreign}\t{u.code}\t[1.0000, 2.0000, 3.0000]")
    bad_id = v.utt_id[:-4] + "Q" + v.utt_id[-3:]
    trans_line = _replace_line(transcription, v.utt_id, f"{bad_id} [{v.start_s:08.4f}-{v.end_s:08.4f}]: {v.text}")
    result = scan_corpus(text_corpus.out_dir)
    u_trans_line = next(i + 1 for i, line in enumerate(transcription.read_text().split("\n")) if line.startswith(u.utt_id))
    v_emo_line = next(i + 1 for i, line in enumerate(emo.read_text().split("\n")) if f"\t{v.utt_id}\t" in line)
    assert sorted(_new_rejects(result, text_corpus), key=str) == sorted([
        (R.UNKNOWN_DIALOGUE, emo.name, emo_line, foreign),
        (R.BAD_UTTERANCE_ID, transcription.name, trans_line, bad_id),
        (R.TRANSCRIPTION_LINE_WITHOUT_LABEL, transcription.name, u_trans_line, u.utt_id),
        (R.LABEL_WITHOUT_TRANSCRIPTION_LINE, emo.name, v_emo_line, v.utt_id),
    ], key=str)
    _assert_frames_equal(result.manifest, _without(text_corpus.expected_manifest(), {u.utt_id, v.utt_id}))


def test_end_not_after_start(text_corpus):
    dialogue, emo, transcription = _paths(text_corpus, "Ses05M_script01_1")
    u, v = dialogue.utterances[3], dialogue.utterances[4]
    emo_line = _replace_line(emo, f"[{u.start_s:.4f} - ",
                             f"[{u.start_s:.4f} - {u.start_s:.4f}]\t{u.utt_id}\t{u.code}\t[1.0000, 2.0000, 3.0000]")
    trans_line = _replace_line(transcription, v.utt_id, f"{v.utt_id} [{v.end_s:08.4f}-{v.start_s:08.4f}]: {v.text}")
    result = scan_corpus(text_corpus.out_dir)
    assert sorted(_new_rejects(result, text_corpus), key=str) == sorted([
        (R.BAD_TIMES, emo.name, emo_line, u.utt_id), (R.BAD_TIMES, transcription.name, trans_line, v.utt_id)], key=str)
    _assert_frames_equal(result.manifest, _without(text_corpus.expected_manifest(), {u.utt_id, v.utt_id}))


def test_label_file_without_transcription_and_the_reverse(text_corpus):
    _, emo_a, transcription_a = _paths(text_corpus, "Ses01F_impro01")
    dialogue_b, emo_b, transcription_b = _paths(text_corpus, "Ses05M_script01_1b")
    transcription_a.unlink()
    emo_b.unlink()
    result = scan_corpus(text_corpus.out_dir)
    new = _new_rejects(result, text_corpus)
    assert sorted(new) == sorted([(R.LABELS_WITHOUT_TRANSCRIPTION, emo_a.name, None, None),
                                  (R.TRANSCRIPTION_WITHOUT_LABELS, transcription_b.name, None, None)])
    expected = text_corpus.expected_manifest()
    expected = expected[~expected.dialog_id.isin(["Ses01F_impro01", "Ses05M_script01_1b"])].reset_index(drop=True)
    _assert_frames_equal(result.manifest, expected)


def test_label_without_transcription_line_and_the_reverse(text_corpus):
    dialogue, emo, transcription = _paths(text_corpus, "Ses01M_impro01")
    u, v = dialogue.utterances[0], dialogue.utterances[5]
    emo_line = next(i + 1 for i, line in enumerate(emo.read_text().split("\n")) if f"\t{u.utt_id}\t" in line)
    _replace_line(transcription, u.utt_id, None, encoding="cp1252")
    # Remove v's whole block: summary, rater lines and the blank line after it.
    lines = emo.read_bytes().decode().split("\n")
    start = next(i for i, line in enumerate(lines) if f"\t{v.utt_id}\t" in line)
    end = lines.index("", start)
    emo.write_bytes("\n".join(lines[:start] + lines[end + 1 :]).encode())
    emo_line = emo_line if emo_line < start + 1 else emo_line - (end + 1 - start)
    trans_line = next(i + 1 for i, line in enumerate(transcription.read_bytes().decode("cp1252").split("\n"))
                      if line.startswith(v.utt_id))
    result = scan_corpus(text_corpus.out_dir)
    assert sorted(_new_rejects(result, text_corpus)) == sorted([
        (R.LABEL_WITHOUT_TRANSCRIPTION_LINE, emo.name, emo_line, u.utt_id),
        (R.TRANSCRIPTION_LINE_WITHOUT_LABEL, transcription.name, trans_line, v.utt_id)])
    _assert_frames_equal(result.manifest, _without(text_corpus.expected_manifest(), {u.utt_id, v.utt_id}))


def test_missing_utterance_wav(text_corpus):
    dialogue, _, _ = _paths(text_corpus, "Ses05M_script01_1")
    u = dialogue.utterances[-1]
    text_corpus.wav_path(dialogue, u).unlink()
    result = scan_corpus(text_corpus.out_dir)
    assert _new_rejects(result, text_corpus) == [(R.MISSING_WAV, f"{u.utt_id}.wav", None, u.utt_id)]
    _assert_frames_equal(result.manifest, _without(text_corpus.expected_manifest(), {u.utt_id}))
    with pytest.raises(InputError, match=rf"{u.utt_id}.wav: missing-wav: utterance wav of {u.utt_id} not found"):
        scan_corpus(text_corpus.out_dir, strict=True)


def test_undecodable_bytes(text_corpus):
    # Non-UTF-8 text decodes through the fallback and is kept.
    dialogue, emo, transcription = _paths(text_corpus, "Ses01F_impro01")
    u = dialogue.utterances[0]
    lines = transcription.read_bytes().split(b"\n")
    index = next(i for i, line in enumerate(lines) if line.startswith(u.utt_id.encode()))
    lines[index] = lines[index].replace(b": ", b": \xff\xfe ", 1)
    transcription.write_bytes(b"\n".join(lines))
    # A binary label file is unusable: it and its dialogue's transcription are rejected as files.
    dialogue_b, emo_b, transcription_b = _paths(text_corpus, "Ses03M_impro05a")
    emo_b.write_bytes(b"\x00\x01binary\x00" * 100)
    # A line with control characters is unusable; its neighbours are not.
    dialogue_c, _, transcription_c = _paths(text_corpus, "Ses05M_script01_1")
    w = dialogue_c.utterances[1]
    lines = transcription_c.read_bytes().split(b"\n")
    index_c = next(i for i, line in enumerate(lines) if line.startswith(w.utt_id.encode()))
    lines[index_c] = lines[index_c] + b"\x1b[0m\x07"
    transcription_c.write_bytes(b"\n".join(lines))
    result = scan_corpus(text_corpus.out_dir)
    assert sorted(_new_rejects(result, text_corpus)) == sorted([
        (R.UNDECODABLE, emo_b.name, None, None),
        (R.TRANSCRIPTION_WITHOUT_LABELS, transcription_b.name, None, None),
        (R.UNDECODABLE, transcription_c.name, index_c + 1, w.utt_id),
    ])
    expected = text_corpus.expected_manifest()
    expected = _without(expected[expected.dialog_id != "Ses03M_impro05a"], {w.utt_id})
    expected.loc[expected.utt_id == u.utt_id, "text"] = "\u00ff\u00fe " + u.text  # cp1252 fallback
    _assert_frames_equal(result.manifest, expected)


def test_malformed_wdseg_keeps_the_utterance(text_corpus):
    dialogue, _, _ = _paths(text_corpus, "Ses01M_impro01")
    u = next(x for x in dialogue.utterances if x.has_wdseg)
    path = text_corpus.wdseg_path(dialogue, u)
    path.write_text(path.read_text().replace("<s>", "<s> extra tokens"))
    result = scan_corpus(text_corpus.out_dir)
    assert _new_rejects(result, text_corpus) == [(R.MALFORMED_WDSEG, path.name, 2, u.utt_id)]
    expected = text_corpus.expected_manifest()
    index = expected.index[expected.utt_id == u.utt_id][0]
    expected.at[index, "wdseg_path"] = None
    expected.at[index, "words"] = []
    _assert_frames_equal(result.manifest, expected)


def test_duplicates_stray_files_and_wrong_session(text_corpus):
    dialogue, emo, transcription = _paths(text_corpus, "Ses01F_impro01")
    u = dialogue.utterances[0]
    original = next(line for line in transcription.read_text().split("\n") if line.startswith(u.utt_id))
    transcription.write_text(transcription.read_text() + original.replace(u.text, "a second take") + "\n")
    duplicate_line = len(transcription.read_text().split("\n")) - 1
    (emo.parent / "notes.txt").write_text("to do")
    _, emo_m, transcription_m = _paths(text_corpus, "Ses01M_impro01")
    session2 = text_corpus.session_dir(2) / "dialog"
    (session2 / "EmoEvaluation").mkdir(parents=True)
    (session2 / "transcriptions").mkdir(parents=True)
    shutil.move(emo_m, session2 / "EmoEvaluation" / emo_m.name)
    shutil.move(transcription_m, session2 / "transcriptions" / transcription_m.name)
    result = scan_corpus(text_corpus.out_dir)
    assert sorted(_new_rejects(result, text_corpus), key=str) == sorted([
        (R.DUPLICATE_UTTERANCE, transcription.name, duplicate_line, u.utt_id),
        (R.UNRECOGNISED_NAME, "notes.txt", None, None),
        (R.MISSING_FOLDER, "wav", None, None),
        (R.WRONG_SESSION, emo_m.name, None, None),
        (R.WRONG_SESSION, transcription_m.name, None, None),
    ], key=str)
    expected = text_corpus.expected_manifest()
    _assert_frames_equal(result.manifest, expected[expected.dialog_id != "Ses01M_impro01"].reset_index(drop=True))


def test_no_sessions_is_an_error(scratch_dir):
    (scratch_dir / "__MACOSX" / "Session1").mkdir(parents=True)
    with pytest.raises(InputError, match="no Session1..Session5 folder found"):
        scan_corpus(scratch_dir)
    with pytest.raises(InputError, match="not a directory"):
        scan_corpus(scratch_dir / "nothing")


def test_unreadable_alignment_keeps_the_utterance(text_corpus):
    dialogue, _, _ = _paths(text_corpus, "Ses05M_script01_1b")
    u = next(x for x in dialogue.utterances if x.has_wdseg)
    path = text_corpus.wdseg_path(dialogue, u)
    path.unlink()
    path.mkdir()  # a folder where a file should be: reading it fails
    result = scan_corpus(text_corpus.out_dir)
    rejects = result.rejects[result.rejects.reason == R.MALFORMED_WDSEG]
    assert rejects["utt_id"].tolist() == [u.utt_id]
    assert rejects["detail"].iloc[0].startswith("cannot read the file: Is a directory")
    assert u.utt_id in set(result.manifest["utt_id"])


def test_symlink_loops_drop_only_themselves_and_are_counted(text_corpus):
    session = text_corpus.session_dir(1)
    dialogue, emo, _ = _paths(text_corpus, "Ses01F_impro01")
    loops = [
        text_corpus.release_dir / "loop",  # above the sessions: a folder the scan walks
        emo.parent / "loop",  # beside the label files
        session / "sentences" / "wav" / dialogue.dialog_id / "loop.wav",  # beside the utterance wavs
    ]
    for loop in loops:
        loop.symlink_to(loop.name)  # a link to itself: following it never ends
    (text_corpus.release_dir / "a").symlink_to("b")  # a two-link cycle
    (text_corpus.release_dir / "b").symlink_to("a")
    loops[1:1] = [text_corpus.release_dir / "a", text_corpus.release_dir / "b"]
    result = scan_corpus(text_corpus.out_dir)
    _assert_frames_equal(result.manifest, text_corpus.expected_manifest())
    expected = dict(text_corpus.expected_rejects)
    expected[R.UNREADABLE] = 5
    assert _reasons(result) == expected
    unreadable = result.rejects[result.rejects.reason == R.UNREADABLE]
    assert sorted(unreadable["path"]) == sorted(str(p.parent.resolve() / p.name) for p in loops)
    assert set(unreadable["detail"]) == {"cannot follow the entry: Too many levels of symbolic links (a symlink loop); not read"}
    with pytest.raises(InputError) as raised:
        scan_corpus(text_corpus.out_dir, strict=True)
    assert str(raised.value) == (f"{text_corpus.release_dir.resolve() / 'a'}: unreadable: cannot follow the entry: "
                                 "Too many levels of symbolic links (a symlink loop); not read")


def test_a_refused_output_write_keeps_the_earlier_manifest(text_corpus, scratch_dir, monkeypatch):
    import errno
    import os

    import pyarrow.parquet as pq

    from dgnode.errors import EnvironmentFault

    result = scan_corpus(text_corpus.out_dir)
    out = scratch_dir / "scan"
    write_scan(result, out)
    before = (out / "manifest.parquet").read_bytes()

    def full(table, where, *args, **kwargs):
        Path(where).write_bytes(b"PAR1 half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(where))

    monkeypatch.setattr(pq, "write_table", full)
    with pytest.raises(EnvironmentFault) as raised:
        write_scan(result, out)
    assert str(raised.value) == (f"{out}: cannot write the scan's output (No space left on device): make the folder "
                                 "writable or free space on it, then run the scan again")
    assert (out / "manifest.parquet").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["manifest.parquet", "rejects.parquet"]


def test_a_corpus_root_that_loops_is_one_error(scratch_dir):
    (scratch_dir / "root").symlink_to("root")
    with pytest.raises(InputError, match=rf"^{scratch_dir / 'root'}: corpus root cannot be followed \(Symlink loop from"):
        scan_corpus(scratch_dir / "root")
