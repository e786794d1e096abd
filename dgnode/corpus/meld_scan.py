"""Scan a raw MELD release into the utterance manifest (the IEMOCAP contract) and the rejects.

::

    result = scan_meld("/data/MELD.Raw", labels="meld7", unpack_dir="/data/scan/unpacked")
    write_scan(result, "/data/scan")   # manifest.parquet, rejects.parquet

The sources (CSVs, clip folders or archives) are found by :mod:`dgnode.corpus.meld_layout`, each
CSV read by :mod:`dgnode.corpus.meld_csv`, each split's clips listed and probed by
:mod:`dgnode.corpus.meld_clips`. One manifest row per CSV row (the CSV defines the utterance:
text, speaker, labels), in order of split, ``Dialogue_ID`` and ``Utterance_ID``; ``order`` is the
rank of ``Utterance_ID`` in its dialogue (the real ids skip numbers in 76 dialogues: a gap there
is no missing utterance). Ids, splits and columns: :mod:`dgnode.corpus.meld_names` and
:mod:`dgnode.corpus.manifest`.

**Span of an utterance.** Times are seconds inside the utterance's own clip: ``start_s = 0`` and
``end_s`` from :func:`utterance_span`: the clip's length, except that a clip lasting more than its
CSV span (``EndTime - StartTime``) plus :data:`OVERLONG_MARGIN_S` is cut to that span, and
nothing is longer than ``max_utterance_s`` (:data:`MAX_UTTERANCE_S`): the real release has clips
of 4 and 5 minutes (test ``dia220_utt0``, ``dia38_utt4``, whose CSV spans are as long) that would
otherwise be decoded whole. Each cut is an ``overlong-clip`` row. A CSV span under
:data:`MIN_SPAN_S` (or negative, or unreadable) is no evidence: the clip's length is used
(``short-span``). A span starting before the previous utterance ends is ``overlapping-span``
(kept: people talk over each other; the order comes from ``Utterance_ID``).

**Utterances without a usable clip** keep their row (text and label are the CSV's, the dialogue
keeps its length) with a null ``video_path``: ``missing-clip`` (the real dev ``dia110_utt7``),
``corrupt-clip`` (train ``dia125_utt3``), or the split's ``missing-folder``. Extraction records
their audio and vision as failures; a text-only extraction embeds them. Clips in no CSV row
(``dia66_utt9``, ...) are ``clip-without-row`` and not read; a clip used under its
``final_videos_test`` name is ``prefixed-clip``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dgnode.corpus import rejects as R
from dgnode.corpus.labels import LabelScheme, scheme_for
from dgnode.corpus.meld_clips import ClipError, SplitClips, list_clips, probe_clip
from dgnode.corpus.meld_csv import MeldRow, read_meld_csv
from dgnode.corpus.meld_layout import find_release
from dgnode.corpus.meld_names import CSV_FILES, MANIFEST_SPLIT, MAX_UTTERANCE_S, MELD_SPLITS, clip_name, dialog_id_of
from dgnode.corpus.rejects import RejectLog
from dgnode.corpus.scan import ScanResult
from dgnode.errors import InputError

__all__ = ["MAX_UTTERANCE_S", "MIN_SPAN_S", "OVERLONG_MARGIN_S", "UtteranceSpan", "scan_meld", "utterance_span"]

MIN_SPAN_S = 0.2
OVERLONG_MARGIN_S = 5.0


@dataclass(frozen=True)
class UtteranceSpan:
    end_s: float  # seconds into the clip; the utterance is [0, end_s]
    cut: str | None  # why the clip is not read whole, None when it is


def utterance_span(clip_s: float, csv_span_s: float | None, max_s: float = MAX_UTTERANCE_S) -> UtteranceSpan:
    """The part of a clip of ``clip_s`` seconds that is the utterance (see the module docstring)."""
    span = csv_span_s if csv_span_s is not None and csv_span_s >= MIN_SPAN_S else None
    end, cut = clip_s, None
    if span is not None and clip_s > span + OVERLONG_MARGIN_S:
        end, cut = span, f"the clip lasts {clip_s:.2f} s, its CSV span {span:.2f} s: cut to the span"
    if end > max_s:
        end, cut = max_s, f"the clip lasts {clip_s:.2f} s" + (f" (CSV span {span:.2f} s)" if span else "") + \
            f": cut to the first {max_s:g} s"
    return UtteranceSpan(round(end, 6), cut)


def scan_meld(
    root: str | Path,
    labels: str | None = None,
    strict: bool = False,
    progress: bool | None = False,
    unpack_dir: str | Path | None = None,
    max_utterance_s: float = MAX_UTTERANCE_S,
) -> ScanResult:
    """Scan the MELD release under ``root`` (see the module docstring).

    ``labels``: ``meld7`` (default) or ``sentiment3``. ``unpack_dir``: where clip archives are
    unpacked (``None``: archives stay packed and their splits have no clips). With
    ``strict=True`` the first trap raises :class:`~dgnode.errors.InputError` (``path:line: reason:
    detail``); macOS junk never does.
    """
    scheme = scheme_for("meld", labels)
    if max_utterance_s <= 0:
        raise InputError(f"max_utterance_s must be positive, got {max_utterance_s}")
    root = Path(root).resolve()
    if root.is_file() and root.name.endswith((".tar.gz", ".tgz", ".tar")):
        raise InputError("the corpus root is an archive: unpack it first (tar xzf MELD.Raw.tar.gz) and scan the "
                         "MELD.Raw folder", str(root))
    if not root.is_dir():
        raise InputError("corpus root is not a directory", str(root))
    log = RejectLog(strict=strict)
    release = find_release(root, log, Path(unpack_dir).resolve() if unpack_dir else None, progress)
    if not release.csvs:
        raise InputError(f"no MELD CSV ({', '.join(CSV_FILES.values())}) found at any depth (ignoring __MACOSX and "
                         "dot-folders)", str(root))
    rows: list[dict[str, Any]] = []
    for split in MELD_SPLITS:
        clips = list_clips(release.clip_dirs[split], log) if split in release.clip_dirs else None
        if split not in release.csvs:
            held = f"; its {len(clips.paths)} clips are not read" if clips else ""
            log.add(R.MISSING_CSV, root, f"no {CSV_FILES[split]} at any depth: the {split} split has no utterances{held}")
            continue
        csv_rows = read_meld_csv(release.csvs[split], split, log)
        rows.extend(_split_rows(csv_rows, clips, release.csvs[split], scheme, max_utterance_s, log, progress))
    sources = {f"{split} csv": str(path) for split, path in release.csvs.items()}
    sources |= {f"{split} clips": str(path) for split, path in release.clip_dirs.items()}
    return ScanResult.from_rows(rows, log, scheme, root, dataset="meld", sources=sources)


def _split_rows(csv_rows: list[MeldRow], clips: SplitClips | None, csv_path: Path, scheme: LabelScheme,
                max_s: float, log: RejectLog, progress: bool | None) -> list[dict[str, Any]]:
    from tqdm import tqdm

    if clips is not None:
        named = {(r.dialogue, r.utterance) for r in csv_rows}
        for key in sorted(set(clips.paths) - named):
            log.add(R.CLIP_WITHOUT_ROW, clips.paths[key], f"dia{key[0]}_utt{key[1]} is in no row of {csv_path.name}; "
                    "not read")
    dialogues: dict[int, list[MeldRow]] = defaultdict(list)
    for row in csv_rows:
        dialogues[row.dialogue].append(row)
    out = []
    split = csv_rows[0].split if csv_rows else ""
    bar = tqdm(total=len(csv_rows), desc=f"scan {split}", unit="utt", disable=None if progress is None else not progress)
    for dialogue in sorted(dialogues):
        previous: MeldRow | None = None
        for order, row in enumerate(sorted(dialogues[dialogue], key=lambda r: r.utterance)):
            if previous is not None and None not in (row.start_s, previous.end_s) and row.start_s < previous.end_s:
                log.add(R.OVERLAPPING_SPAN, csv_path, f"starts at {row.start_s:.3f} s, before utterance "
                        f"{previous.utterance} ends ({previous.end_s:.3f} s); kept", line=row.line, utt_id=row.utt_id)
            previous = row
            out.append(_manifest_row(row, order, clips, csv_path, scheme, max_s, log))
            bar.update(1)
    bar.close()
    return out


def _manifest_row(row: MeldRow, order: int, clips: SplitClips | None, csv_path: Path, scheme: LabelScheme,
                  max_s: float, log: RejectLog) -> dict[str, Any]:
    span = row.span_s
    if span is not None and span < MIN_SPAN_S:
        log.add(R.SHORT_SPAN, csv_path, f"CSV span {span:.3f} s is under {MIN_SPAN_S:g} s; the clip's own length is "
                "used", line=row.line, utt_id=row.utt_id)
    key = (row.dialogue, row.utterance)
    video_path, end_s = None, min(span, max_s) if span is not None and span >= MIN_SPAN_S else 0.0
    if clips is not None and key not in clips.paths:
        log.add(R.MISSING_CLIP, csv_path, f"no {clip_name(*key)} in {clips.folder}; kept without video", line=row.line,
                utt_id=row.utt_id)
    elif clips is not None:
        path = clips.paths[key]
        try:
            info = probe_clip(path)
        except ClipError as error:
            log.add(R.CORRUPT_CLIP, path, f"{error}; kept without video", line=row.line, utt_id=row.utt_id)
        else:
            if key in clips.prefixed:
                log.add(R.PREFIXED_CLIP, path, f"used as {clip_name(*key)}", line=row.line, utt_id=row.utt_id)
            cut = utterance_span(info.duration_s, span, max_s)
            if cut.cut:
                log.add(R.OVERLONG_CLIP, path, cut.cut, line=row.line, utt_id=row.utt_id)
            video_path, end_s = str(path), cut.end_s
    code = row.emotion if scheme.column == "Emotion" else row.sentiment
    return {
        "dialog_id": dialog_id_of(row.split, row.dialogue),
        "utt_id": row.utt_id,
        "session": row.season,
        "speaker": row.speaker,
        "speaker_side": "full",
        "start_s": 0.0,
        "end_s": end_s,
        "order": order,
        "label_code": code,
        "label": scheme.label_of(code),
        "majority_category": None,
        "text": row.text,
        "wav_path": None,
        "video_path": video_path,
        "wdseg_path": None,
        "words": [],
        "split": MANIFEST_SPLIT[row.split],
    }
