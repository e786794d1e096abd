"""A synthetic MELD release in the exact raw format, deterministic for a seed.

::

    summary = synthesize_meld("/tmp/mini", SynthConfig(dataset="meld"))          # 9 trap dialogues, clips
    summary = synthesize_meld("/tmp/full", SynthConfig(dataset="meld", structure="dgnode/data/meld_structure.json",
                                                      video=False))            # 1432 dialogues, CSVs only
    summary.expected_manifest("meld7")   # the rows `scan_meld(out_dir)` must return

Layout: ``OUT/MELD.Raw/`` with ``train_sent_emo.csv``, ``dev_sent_emo.csv``,
``test_sent_emo.csv`` and the clip folders ``train_splits/``, ``dev_splits_complete/``,
``output_repeated_splits_test/`` (``archives=True``: ``train.tar.gz``, ``dev.tar.gz``,
``test.tar.gz`` holding those folders instead, as the release ships), plus macOS junk
(``.DS_Store``, ``._*`` sidecars, ``OUT/__MACOSX/``; inside archives a sidecar and a
``__MACOSX/`` member). ``video=False`` writes the CSVs only.

The CSVs are MELD's (CRLF, quoted times, :data:`~dgnode.corpus.meld_names.CSV_COLUMNS`) in the
encodings of the archive: ``train`` and ``test`` in cp1252 (``’`` is the byte ``\\x92``), ``dev``
with the same characters as UTF-8-encoded C1 controls (``\\xc2\\x92``, what a cp1252 file read
as Latin-1 and saved as UTF-8 holds). The traps and row irregularities are planned by
:mod:`dgnode.corpus.meld_synth_plan`, the clips written by :mod:`dgnode.corpus.meld_synth_media`.
Clip lengths are read back from the written files (:attr:`MeldSynthSummary.clip_seconds`), as a
scan reads them.
"""

from __future__ import annotations

import csv
import gzip
import io
import shutil
import tarfile
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dgnode.corpus import rejects as R
from dgnode.corpus.labels import scheme_for
from dgnode.corpus.manifest import manifest_frame
from dgnode.corpus.meld_clips import probe_clip
from dgnode.corpus.meld_names import (
    ARCHIVES, CLIP_FOLDERS, CSV_COLUMNS, CSV_FILES, MANIFEST_SPLIT, MELD_SPLITS, clip_name, utt_id_of,
)
from dgnode.corpus.meld_scan import MAX_UTTERANCE_S, MIN_SPAN_S, utterance_span
from dgnode.corpus.meld_synth_media import write_clip, write_corrupt_clip
from dgnode.corpus.meld_synth_plan import MeldSynthDialogue, MeldSynthUtterance, plan_meld
from dgnode.corpus.names import MACOSX_DIR
from dgnode.corpus.synth_dialogue import dialogue_rng
from dgnode.corpus.synth_traps import appledouble_bytes, ds_store_bytes

__all__ = ["CSV_ENCODINGS", "MELD_RELEASE_DIR", "MeldSynthSummary", "synthesize_meld"]

MELD_RELEASE_DIR = "MELD.Raw"
CSV_ENCODINGS = {"train": "cp1252", "dev": "c1-utf8", "test": "cp1252"}


@dataclass
class MeldSynthSummary:
    """What was written; :meth:`expected_manifest` and :meth:`expected_rejects` are what a scan of
    ``out_dir`` must return."""

    out_dir: Path
    release_dir: Path
    dialogues: list[MeldSynthDialogue]
    video: bool
    archives: bool
    junk: bool
    clip_seconds: dict[tuple[str, int, int], float]  # clips written and readable, by (split, D, U)
    files_written: int
    bytes_written: int
    seconds: float

    def utterances(self):
        for dialogue in self.dialogues:
            for utterance in dialogue.utterances:
                yield dialogue, utterance

    def clip_folder(self, split: str, unpack_dir: Path | None = None) -> Path:
        """Where a scan finds the split's clips (``unpack_dir``: the scan's, for archives)."""
        if self.archives:
            if unpack_dir is None:
                raise ValueError("an archived release's clips live where the scan unpacks them: pass unpack_dir")
            return Path(unpack_dir).resolve() / split / CLIP_FOLDERS[split]
        return self.release_dir.resolve() / CLIP_FOLDERS[split]

    def expected_manifest(self, labels: str = "meld7", max_utterance_s: float = MAX_UTTERANCE_S,
                          unpack_dir: Path | None = None) -> pd.DataFrame:
        """The manifest rows, in scan order (split, Dialogue_ID, Utterance_ID)."""
        scheme = scheme_for("meld", labels)
        rows: list[dict[str, Any]] = []
        for d in self.dialogues:
            for order, u in enumerate(d.utterances):
                seconds = self.clip_seconds.get((d.split, d.dialogue, u.utterance))
                span = u.span_s if u.span_s >= MIN_SPAN_S else None
                end_s, video = (min(span, max_utterance_s) if span is not None else 0.0), None
                if seconds is not None:
                    end_s = utterance_span(seconds, u.span_s, max_utterance_s).end_s
                    prefixed = u.utterance in d.traps.prefixed
                    video = str(self.clip_folder(d.split, unpack_dir) / clip_name(d.dialogue, u.utterance, prefixed))
                code = u.emotion if scheme.column == "Emotion" else u.sentiment
                rows.append({
                    "dialog_id": d.dialog_id, "utt_id": utt_id_of(d.split, d.dialogue, u.utterance),
                    "session": d.season, "speaker": u.speaker, "speaker_side": "full", "start_s": 0.0,
                    "end_s": end_s, "order": order, "label_code": code, "label": scheme.label_of(code),
                    "majority_category": None, "text": u.text, "wav_path": None, "video_path": video,
                    "wdseg_path": None, "words": [], "split": MANIFEST_SPLIT[d.split],
                })
        return manifest_frame(rows)

    def expected_rejects(self, max_utterance_s: float = MAX_UTTERANCE_S) -> dict[str, int]:
        """Rows per reason a scan's ``rejects.parquet`` must hold (reasons with none left out)."""
        counts: Counter[str] = Counter()
        for split in MELD_SPLITS:  # the writer ignores the gap of a file's first row
            gaps = [gap for d in self.dialogues if d.split == split for gap in d.sr_gaps]
            counts[R.SR_NO_GAP] += sum(1 for gap in gaps[1:] if gap)
        for d, u in self.utterances():
            counts[R.CP1252_TEXT] += u.cp1252
            counts[R.ONE_DIGIT_HOUR] += u.one_digit_hour
            counts[R.SHORT_SPAN] += u.span_s < MIN_SPAN_S
            seconds = self.clip_seconds.get((d.split, d.dialogue, u.utterance))
            if seconds is not None:
                counts[R.OVERLONG_CLIP] += utterance_span(seconds, u.span_s, max_utterance_s).cut is not None
        for d in self.dialogues:
            counts[R.OVERLAPPING_SPAN] += sum(1 for a, b in zip(d.utterances, d.utterances[1:]) if b.start_ms < a.end_ms)
        if self.video:
            for d in self.dialogues:
                counts[R.MISSING_CLIP] += len(d.traps.missing)
                counts[R.CORRUPT_CLIP] += len(d.traps.corrupt)
                counts[R.CLIP_WITHOUT_ROW] += len(d.traps.extra_clips)
                counts[R.PREFIXED_CLIP] += len(d.traps.prefixed)
                counts[R.DUPLICATE_CLIP] += len(d.traps.both_names)
        else:
            counts[R.MISSING_FOLDER] += len(MELD_SPLITS)
        if self.junk:
            # OUT/__MACOSX, MELD.Raw/.DS_Store; per split a .DS_Store and a sidecar in its folder
            # (archived: members, and one row for the archive's __MACOSX/ members).
            counts[R.MACOS_JUNK] += 2 + ((3 if self.archives else 2) * len(MELD_SPLITS) if self.video else 0)
        return {reason: count for reason, count in sorted(counts.items()) if count}

    def label_counts(self, labels: str = "meld7") -> dict[str, int]:
        scheme = scheme_for("meld", labels)
        codes = Counter((u.emotion if scheme.column == "Emotion" else u.sentiment) for _, u in self.utterances())
        return {name: codes.get(name, 0) for name in scheme.label_names}


def synthesize_meld(out_dir: str | Path, config, progress: bool | None = False) -> MeldSynthSummary:
    """Write a synthetic raw MELD release under ``out_dir`` for ``config`` (a
    :class:`~dgnode.corpus.synth_plan.SynthConfig` with ``dataset="meld"``); see the module docstring."""
    from dgnode.reporting.progress import progress_bar

    began = time.perf_counter()
    dialogues = plan_meld(config)
    out = Path(out_dir)
    release = out / MELD_RELEASE_DIR
    release.mkdir(parents=True, exist_ok=True)
    written = Counter()
    for split in MELD_SPLITS:
        data = _csv_bytes([d for d in dialogues if d.split == split], CSV_ENCODINGS[split])
        (release / CSV_FILES[split]).write_bytes(data)
        written.update(files=1, bytes=len(data))
    clip_seconds: dict[tuple[str, int, int], float] = {}
    if config.video:
        total = sum(len(d.utterances) + len(d.traps.extra_clips) for d in dialogues)
        bar = progress_bar(total=total, desc="synth clips", unit="clip", enabled=progress is not False)
        for split in MELD_SPLITS:
            folder = (out / f".staging-{split}" if config.archives else release) / CLIP_FOLDERS[split]
            folder.mkdir(parents=True, exist_ok=True)
            for d in (d for d in dialogues if d.split == split):
                _write_clips(folder, d, config.seed, clip_seconds, written, bar)
            if config.junk:
                first = sorted(folder.iterdir())[0].name
                for path, data in ((folder / ".DS_Store", ds_store_bytes()), (folder / f"._{first}", appledouble_bytes())):
                    path.write_bytes(data)
            if config.archives:
                written.update(files=1, bytes=_write_archive(release / ARCHIVES[split], folder, config.junk))
                shutil.rmtree(folder.parent)
        bar.close()
    if config.junk:
        for path, data in ((release / ".DS_Store", ds_store_bytes()),
                           (out / MACOSX_DIR / MELD_RELEASE_DIR / f"._{CSV_FILES['train']}", appledouble_bytes())):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return MeldSynthSummary(out, release, dialogues, config.video, config.archives and config.video, config.junk,
                            clip_seconds, written["files"], written["bytes"], time.perf_counter() - began)


def _time(ms: int, one_digit_hour: bool) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:{'d' if one_digit_hour else '02d'}}:{minutes:02d}:{seconds:02d},{millis:03d}"


def _csv_bytes(dialogues: list[MeldSynthDialogue], encoding: str) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    number = 0
    for d in dialogues:
        for u, gap in zip(d.utterances, d.sr_gaps):
            number += 1 + (gap if number else 0)  # the file's first row is 1: a gap needs a row before it
            writer.writerow([number, u.written_text, u.speaker, u.emotion, u.sentiment, d.dialogue, u.utterance,
                             d.season, d.episode, _time(u.start_ms, u.one_digit_hour), _time(u.end_ms, u.one_digit_hour)])
    text = buffer.getvalue()
    if encoding == "cp1252":
        return text.encode("cp1252")
    return text.encode("cp1252").decode("latin-1").encode("utf-8")  # C1 controls as UTF-8


def _pitch(name: str) -> float:
    return 110.0 + 12.0 * (zlib.crc32(name.encode()) % 12)


def _write_clips(folder: Path, d: MeldSynthDialogue, seed: int, clip_seconds: dict, written: Counter, bar) -> None:
    rng = dialogue_rng(seed, f"meld/{d.split}/{d.dialogue}/media")
    for u in d.utterances:
        if u.utterance in d.traps.missing:
            continue
        path = folder / clip_name(d.dialogue, u.utterance, u.utterance in d.traps.prefixed)
        if u.utterance in d.traps.corrupt:
            written.update(files=1, bytes=write_corrupt_clip(path, rng))
        else:
            size = _write_utterance_clip(path, d, u, rng)
            written.update(files=1, bytes=size)
            clip_seconds[(d.split, d.dialogue, u.utterance)] = probe_clip(path).duration_s
            if u.utterance in d.traps.both_names:
                shutil.copyfile(path, folder / clip_name(d.dialogue, u.utterance, prefixed=True))
                written.update(files=1, bytes=size)
        bar.update(1)
    for utterance in d.traps.extra_clips:
        seconds = round(float(rng.uniform(1.0, 2.0)), 3)
        speaker = int(rng.integers(len(d.cast)))
        size = write_clip(folder / clip_name(d.dialogue, utterance), seconds, seconds, len(d.cast), speaker,
                          _pitch(d.cast[speaker]), None, rng)
        written.update(files=1, bytes=size)
        bar.update(1)


def _write_utterance_clip(path: Path, d: MeldSynthDialogue, u: MeldSynthUtterance, rng) -> int:
    spoken = min(u.clip_s, u.span_s) if u.span_s >= MIN_SPAN_S else u.clip_s
    return write_clip(path, u.clip_s, spoken, len(d.cast), d.cast.index(u.speaker), _pitch(u.speaker), u.cue, rng)


def _write_archive(archive: Path, folder: Path, junk: bool) -> int:
    """``folder`` as a deterministic ``.tar.gz`` (fixed times and owners); with ``junk`` a
    ``__MACOSX/`` mirror member too, as archives made on a Mac hold."""
    def add(tar: tarfile.TarFile, name: str, data: bytes | None) -> None:
        info = tarfile.TarInfo(name)
        info.mtime, info.uid, info.gid, info.uname, info.gname = 1_500_000_000, 0, 0, "", ""
        if data is None:
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        else:
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))

    with archive.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as packed, \
            tarfile.open(fileobj=packed, mode="w") as tar:
        add(tar, folder.name, None)
        for path in sorted(folder.iterdir()):
            add(tar, f"{folder.name}/{path.name}", path.read_bytes())
        if junk:
            add(tar, f"{MACOSX_DIR}/{folder.name}/._dia0_utt0.mp4", appledouble_bytes())
    return archive.stat().st_size
