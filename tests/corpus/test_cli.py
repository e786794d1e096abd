"""`dgnode corpus synth|scan` through the corpus package's COMMANDS."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from dgnode.command import run_command
from dgnode.corpus.cli import COMMANDS
from dgnode.corpus.labels import get_scheme
from dgnode.corpus.manifest import load_manifest, load_rejects


def main(argv: list[str]) -> int:
    return run_command(COMMANDS, argv)


def test_synth_then_scan(scratch_dir, capsys):
    assert main(["corpus", "synth", str(scratch_dir / "raw"), "--seed", "2", "--video", "false", "--dialogs", "5"]) == 0
    out = capsys.readouterr().out
    assert "dialogues" in out and "utterances" in out
    assert not list((scratch_dir / "raw").rglob("*.avi"))
    assert main(["corpus", "scan", str(scratch_dir / "raw"), "--out", str(scratch_dir / "scan"), "--labels", "raw6",
                 "--json"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads(printed.strip().splitlines()[-1])
    manifest = load_manifest(scratch_dir / "scan")
    assert summary["utterances"] == len(manifest) and summary["dialogues"] == 5
    assert summary["labelled"] == int(manifest["label"].notna().sum())
    assert manifest.attrs["label_scheme"] == "raw6"
    assert summary["rejects"] == dict(sorted(Counter(load_rejects(scratch_dir / "scan")["reason"]).items()))
    assert "skipped: macos-junk" in printed and "label hap" in printed


def test_strict_scan_exit_code_and_message(scratch_dir, capsys):
    assert main(["corpus", "synth", str(scratch_dir / "raw"), "--video", "false", "--dialogs", "5"]) == 0
    transcription = scratch_dir / "raw" / "IEMOCAP_full_release" / "Session3" / "dialog" / "transcriptions" / "Ses03M_impro05a.txt"
    lines = transcription.read_text().split("\n")
    index = next(i for i, line in enumerate(lines) if line.startswith("Ses03M_impro05a_"))
    lines[index] = lines[index].replace("]:", "]", 1)
    transcription.write_text("\n".join(lines))
    capsys.readouterr()
    # Lenient: the line is rejected and the scan succeeds.
    assert main(["corpus", "scan", str(scratch_dir / "raw"), "--out", str(scratch_dir / "scan")]) == 0
    rejects = load_rejects(scratch_dir / "scan")
    assert rejects[rejects.reason == "malformed-transcription-line"]["line"].tolist() == [index + 1]
    capsys.readouterr()
    assert main(["corpus", "scan", str(scratch_dir / "raw"), "--out", str(scratch_dir / "strict"), "--strict"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"dgnode: error: {transcription.resolve()}:{index + 1}: malformed-transcription-line: "
                            "expected 'utt_id [start-end]: text'")
    assert not (scratch_dir / "strict" / "manifest.parquet").exists()


def test_bad_synth_arguments_are_one_line_errors(scratch_dir, capsys):
    assert main(["corpus", "synth", str(scratch_dir / "x"), "--dialogs", "3"]) == 2
    assert "dialogs: expected 5..151" in capsys.readouterr().err
    (scratch_dir / "s.json").write_text("{not json")
    assert main(["corpus", "synth", str(scratch_dir / "x"), "--structure", str(scratch_dir / "s.json")]) == 2
    assert f"{scratch_dir / 's.json'}:1: not valid JSON" in capsys.readouterr().err
    assert main(["corpus", "scan", str(scratch_dir), "--out", str(scratch_dir / "o"), "--labels", "seven"]) == 2
    assert "labels" in capsys.readouterr().err


def test_symlink_loop_is_counted_and_the_manifest_written(text_corpus, scratch_dir, capsys):
    clean = scratch_dir / "clean"
    assert main(["corpus", "scan", str(text_corpus.out_dir), "--out", str(clean)]) == 0
    (text_corpus.release_dir / "loop").symlink_to("loop")
    capsys.readouterr()
    assert main(["corpus", "scan", str(text_corpus.out_dir), "--out", str(scratch_dir / "scan"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["rejects"]["unreadable"] == 1
    assert load_manifest(scratch_dir / "scan").equals(load_manifest(clean))
    rejects = load_rejects(scratch_dir / "scan")
    assert rejects[rejects.reason == "unreadable"]["path"].tolist() == [str(text_corpus.release_dir.resolve() / "loop")]
    assert main(["corpus", "scan", str(text_corpus.out_dir), "--out", str(scratch_dir / "strict"), "--strict"]) == 2
    assert capsys.readouterr().err == (f"dgnode: error: {text_corpus.release_dir.resolve() / 'loop'}: unreadable: cannot "
                                       "follow the entry: Too many levels of symbolic links (a symlink loop); not read\n")


def test_unwritable_output_is_one_line_with_exit_1(text_corpus, scratch_dir, capsys, monkeypatch):
    import errno
    import os

    import pyarrow.parquet as pq

    def read_only(table, where, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(where))

    monkeypatch.setattr(pq, "write_table", read_only)
    out = scratch_dir / "scan"
    assert main(["corpus", "scan", str(text_corpus.out_dir), "--out", str(out)]) == 1
    assert capsys.readouterr().err == (f"dgnode: error: {out}: cannot write the scan's output (Read-only file system): "
                                       "make the folder writable or free space on it, then run the scan again\n")


@pytest.mark.slow
def test_structure_corpus_reproduces_the_real_counts(scratch_dir, iemocap_structure_path, capsys):
    raw, out = scratch_dir / "raw", scratch_dir / "scan"
    assert main(["corpus", "synth", str(raw), "--structure", str(iemocap_structure_path), "--video", "false"]) == 0
    assert main(["corpus", "scan", str(raw), "--out", str(out), "--json"]) == 0
    merc6 = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (merc6["sessions"], merc6["dialogues"], merc6["utterances"], merc6["labelled"]) == (5, 151, 10039, 7433)
    assert merc6["label_counts"] == {"hap": 648, "sad": 1084, "neu": 1708, "ang": 1103, "exc": 1041, "fru": 1849}
    assert merc6["splits"] == {"train": {"dialogues": 108, "labelled": 5163},
                               "valid": {"dialogues": 12, "labelled": 647},
                               "test": {"dialogues": 31, "labelled": 1623}}
    assert merc6["without_alignment"] == 2
    # The other schemes from the same rows (scanning again gives the same; see test_scan).
    manifest = load_manifest(out)
    for labels, expected in (("raw6", {"hap": 595, "sad": 1084, "neu": 1708, "ang": 1103, "exc": 1041, "fru": 1849}),
                             ("four", {"hap": 595 + 1041, "sad": 1084, "neu": 1708, "ang": 1103})):
        scheme = get_scheme(labels)
        got = Counter(scheme.label_of(code, majority if isinstance(majority, str) else None)
                      for code, majority in zip(manifest["label_code"], manifest["majority_category"]))
        assert {name: got[i] for i, name in enumerate(scheme.label_names)} == expected
        assert sum(expected.values()) == {"raw6": 7380, "four": 5531}[labels]
    assert set(merc6["rejects"]) == {"comment-line", "macos-junk", "xx-segment"}

    # The labelled rows follow the structure file exactly: speakers and labels in order.
    structure = json.loads(iemocap_structure_path.read_text())
    labelled = manifest[manifest["label"].notna()].sort_values(["dialog_id", "order"])
    for dialog_id, rows in labelled.groupby("dialog_id"):
        entry = structure["dialogues"][dialog_id]
        assert rows["speaker"].str[-1].tolist() == entry["speakers"], dialog_id
        assert rows["label"].astype(int).tolist() == entry["labels"], dialog_id
    assert set(labelled["dialog_id"]) == set(structure["dialogues"])
    raw_codes = Counter(manifest["label_code"])
    assert raw_codes == {"ang": 1103, "dis": 2, "exc": 1041, "fea": 40, "fru": 1849, "hap": 595, "neu": 1708,
                         "oth": 3, "sad": 1084, "sur": 107, "xxx": 2507}
    assert manifest.groupby("session").size().to_dict() == {1: 1819, 2: 1811, 3: 2136, 4: 2103, 5: 2170}


def test_meld_synth_then_scan_detects_the_release_and_says_what_was_kept(scratch_dir, capsys):
    assert main(["corpus", "synth", str(scratch_dir / "raw"), "--dataset", "meld", "--video", "false", "--seed", "1"]) == 0
    assert "synthetic MELD" in capsys.readouterr().out
    assert main(["corpus", "scan", str(scratch_dir / "raw"), "--out", str(scratch_dir / "scan"), "--json"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads(printed.strip().splitlines()[-1])
    manifest = load_manifest(scratch_dir / "scan")
    assert summary["dataset"] == "meld" and manifest.attrs["label_scheme"] == "meld7"
    assert summary["utterances"] == len(manifest) and summary["without_video"] == len(manifest)
    assert "kept: cp1252-text" in printed and "rejected: missing-folder" in printed and "label joy" in printed
    assert main(["corpus", "scan", str(scratch_dir / "raw"), "--out", str(scratch_dir / "s2"), "--labels",
                 "sentiment3"]) == 0
    assert load_manifest(scratch_dir / "s2").attrs["label_names"] == ["neutral", "positive", "negative"]
    capsys.readouterr()
    assert main(["corpus", "scan", str(scratch_dir / "raw"), "--out", str(scratch_dir / "s3"), "--strict"]) == 2
    assert capsys.readouterr().err.strip().startswith("dgnode: error: ")
    assert main(["corpus", "scan", str(scratch_dir / "raw"), "--out", str(scratch_dir / "s4"), "--dataset", "iemocap"]) == 2
    assert "no Session1..Session5 folder" in capsys.readouterr().err
