"""Extraction under faults: a full disk or a store turned read-only mid-run is one ``dgnode: error``
line with exit code 1, keeps every batch stored before it, and the same command then completes;
two extractions into one store at once, in a folder or in S3, store each utterance once.

The disk faults are real: the store lives on a small tmpfs this test mounts (root only; skipped
otherwise, see tests/features/test_store_writers.py for the same faults injected in-process),
unmounted in teardown, also when the test fails. Extraction runs in-process with the plain
engine (``--engine process``): the driver's writing is the same as on Ray.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dgnode.command import run_command
from dgnode.embedding.cli import COMMANDS
from dgnode.embedding.writer import BatchWriter
from dgnode.features.store import FeatureStore

from .conftest import BROKEN

REPO = Path(__file__).resolve().parents[2]
EXPECTED_STORED = 10  # the mini corpus: 15 utterances, the 5 of the BROKEN dialogue fail vision


def expected_ids(mini_corpus) -> set[str]:
    return set(mini_corpus.manifest.loc[mini_corpus.manifest["dialog_id"] != BROKEN, "utt_id"])


def extract_argv(mini_corpus, store: Path) -> list[str]:
    return ["extract", "--manifest", str(mini_corpus.manifest_path), "--store", str(store), "--model", "tiny",
            "--engine", "process", "--max_batch_size", "4", "--decode_batch_size", "2", "--progress", "false", "--json"]


@pytest.fixture
def tmpfs(tmp_path):
    """A 16 MiB tmpfs mounted on a fresh folder; unmounted afterwards, also when the test fails."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(path: Path) -> None:
    """Write ``path`` until its file system has no byte left."""
    descriptor = os.open(path, os.O_CREAT | os.O_WRONLY)
    try:
        for size in (1 << 20, 1 << 12, 1):
            chunk = b"\0" * size
            try:
                while True:
                    os.write(descriptor, chunk)
            except OSError as error:
                assert error.errno == errno.ENOSPC
    finally:
        os.close(descriptor)


def after_first_batch(monkeypatch, action) -> None:
    real = BatchWriter.write

    def write(self, batch, index):
        report = real(self, batch, index)
        if index == 0:
            action()
        return report

    monkeypatch.setattr(BatchWriter, "write", write)


def assert_resumed_completely(mini_corpus, store: Path, stored_before: set[str], summary: dict) -> None:
    assert (summary["already_stored"], summary["stored"], summary["duplicates"]) == (
        len(stored_before), EXPECTED_STORED - len(stored_before), 0)
    opened = FeatureStore.open(store)
    loaded = opened.load()
    assert (len(opened), len(loaded.frame), loaded.duplicates) == (EXPECTED_STORED, EXPECTED_STORED, 0)
    assert set(loaded.frame["utt_id"]) == expected_ids(mini_corpus)
    # Provenance was committed with its rows: every stored utterance has it, none short.
    assert set(opened.read_provenance()["utt_id"]) >= set(loaded.frame["utt_id"])
    assert not [p for p in store.rglob(".*") if p.is_file()]  # no temporary file, no lock left


@pytest.mark.parametrize("fault", ["full disk", "read-only"])
def test_disk_fault_mid_extraction_is_one_line_and_the_same_command_resumes(mini_corpus, tmpfs, monkeypatch, capsys,
                                                                           fault):
    store = tmpfs / "features"
    if fault == "full disk":
        after_first_batch(monkeypatch, lambda: fill(tmpfs / "filler"))
        expected = "No space left on device): free space on its file system"
    else:
        after_first_batch(monkeypatch, lambda: subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True))
        expected = "Read-only file system): make it writable"
    argv = extract_argv(mini_corpus, store)

    assert run_command(COMMANDS, argv) == 1
    stored_before = FeatureStore.open(store).stored_utt_ids()
    assert len(stored_before) == 4 and stored_before <= expected_ids(mini_corpus)
    assert capsys.readouterr().err == (
        f"dgnode: error: {store}: cannot write batch 1 ({expected}, then run the same command again; everything stored "
        f"before is kept and is not redone (4 utterance(s) stored by this run are kept)\n")

    monkeypatch.undo()
    if fault == "full disk":
        (tmpfs / "filler").unlink()
    else:
        subprocess.run(["mount", "-o", "remount,rw", str(tmpfs)], check=True)
    assert run_command(COMMANDS, argv) == 0
    assert_resumed_completely(mini_corpus, store, stored_before, json.loads(capsys.readouterr().out))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["local", "s3"])
def test_two_concurrent_extractions_store_each_utterance_once(mini_corpus, tmp_path, kind, request):
    # In S3 the two share nothing but the bucket (their AWS variables travel in the environment).
    store = tmp_path / "features" if kind == "local" else f"{request.getfixturevalue('s3_uri')}/features"
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    argv = [sys.executable, "-m", "dgnode.cli", *extract_argv(mini_corpus, store)]
    runs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        outputs = [run.communicate(timeout=600) for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.wait()
    assert [run.returncode for run in runs] == [0, 0], [err[-2000:] for _, err in outputs]
    summaries = [json.loads(out) for out, _ in outputs]
    # Each utterance stored by exactly one of them: what one embedded and found stored by the other
    # (or already stored when it started) is counted as a duplicate, never written.
    assert sum(s["stored"] for s in summaries) == EXPECTED_STORED
    assert [s["already_stored"] + s["stored"] + s["duplicates"] for s in summaries] == [EXPECTED_STORED] * 2
    opened = FeatureStore.open(store)
    loaded = opened.load()
    assert (len(opened), len(loaded.frame), loaded.duplicates) == (EXPECTED_STORED, EXPECTED_STORED, 0)
    assert set(loaded.frame["utt_id"]) == expected_ids(mini_corpus)
    assert set(opened.read_provenance()["utt_id"]) >= expected_ids(mini_corpus)
    # The failed utterances: one failure row per (utterance, modality) and attempt.
    failures = opened.load_failures()
    assert set(failures["utt_id"]) == set(mini_corpus.manifest.loc[mini_corpus.manifest["dialog_id"] == BROKEN, "utt_id"])
