"""Scan a raw IEMOCAP tree into the utterance manifest and the rejects table.

::

    result = scan_corpus("/data/IEMOCAP", labels="merc6")
    write_scan(result, "/data/manifests/iemocap")   # manifest.parquet, rejects.parquet

The scan finds ``Session[1-5]`` folders at any depth (never inside ``__MACOSX`` or dot-folders),
lists each session's ``dialog/EmoEvaluation`` (non-recursively: its ``Categorical/``,
``Attribute/`` and ``Self-evaluation/`` subfolders are not dialogues) and
``dialog/transcriptions``, and accepts only entries named ``<dialog>.txt`` with a valid dialogue
id. Per dialogue it parses both files, joins them by whole utterance id, requires the
utterance wav ``sentences/wav/<dialog>/<utt>.wav`` (presence only; decoding is the extraction
stage's job), attaches the word alignment when ``sentences/ForcedAlignment/<dialog>/<utt>.wdseg``
exists (a missing one is not an error) and the dialogue video ``dialog/avi/DivX/<dialog>.avi``
when present, then orders the dialogue by start time. Start and end times come from
EmoEvaluation (the transcription repeats them).

The root is a local folder or an ``s3://bucket/prefix`` (:mod:`dgnode.corpus.tree`: an S3 prefix
is listed once, not folder by folder, and the text files are read a few dialogues ahead); the
manifest's media paths are then ``s3://`` URIs, which extraction fetches where it runs
(:mod:`dgnode.media.fetch`). Every check below is the same for both.

Junk is counted where the scan lists a folder: the folders above the sessions and the session
folders read above. Folders the scan never lists (``lab/``, ``MOCAP_*``, ``dialog/wav``) are not
inspected. Every skip and reject is one row of ``rejects`` (see :mod:`dgnode.corpus.rejects`),
among them entries that cannot be followed (a symlink loop): they drop only themselves.
"""

from __future__ import annotations

import errno
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dgnode.corpus import rejects as R
from dgnode.corpus.emo_evaluation import EmoBlock, parse_emo_evaluation
from dgnode.corpus.labels import LabelScheme, get_scheme
from dgnode.corpus.manifest import (
    manifest_frame,
    rejects_frame,
    scan_outputs,
    write_manifest,
    write_rejects,
)
from dgnode.corpus.names import (
    MACOSX_DIR,
    SESSION_DIR_RE,
    is_dialog_id,
    is_macos_junk_name,
    parse_utterance_id,
    session_of_dialog,
)
from dgnode.corpus.rejects import RejectLog
from dgnode.corpus.splits import SPLITS, standard_split
from dgnode.corpus.textio import decode_lines
from dgnode.corpus.transcriptions import TranscriptLine, parse_transcription
from dgnode.corpus.tree import CorpusTree, Entry, Reader, open_tree
from dgnode.corpus.wdseg import WdsegError, parse_wdseg, words
from dgnode.errors import EnvironmentFault, InputError
from dgnode.storage import Location

__all__ = ["EMO_SUBFOLDERS", "ScanResult", "find_session_dirs", "list_entries", "scan_corpus", "write_scan"]

EMO_SUBFOLDERS = frozenset({"Categorical", "Attribute", "Self-evaluation"})


@dataclass
class ScanResult:
    """The manifest (one row per valid utterance, labelled or not) and everything skipped."""

    manifest: pd.DataFrame
    rejects: pd.DataFrame
    label_scheme: str = "merc6"
    label_names: tuple[str, ...] = ()
    corpus_root: str = ""
    session_dirs: dict[int, str] = field(default_factory=dict)
    dataset: str = "iemocap"  # or "meld" (dgnode.corpus.meld_scan)
    sources: dict[str, str] = field(default_factory=dict)  # MELD: the CSVs and clip folders read

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]], log: RejectLog, scheme: LabelScheme, corpus_root: Path,
                  **fields: Any) -> "ScanResult":
        """The result of a scan that found ``rows`` (manifest dicts) and logged ``log``."""
        return cls(manifest=manifest_frame(rows), rejects=rejects_frame([row.__dict__ for row in log.rows]),
                   label_scheme=scheme.name, label_names=scheme.label_names, corpus_root=str(corpus_root), **fields)

    def summary(self) -> dict[str, Any]:
        """Counts for reports: dialogues, utterances, labelled, per label, splits, rejects; sessions and
        utterances without word alignment (IEMOCAP), seasons and speakers (MELD)."""
        frame = self.manifest
        labelled = frame[frame["label"].notna()]
        label_counts = Counter(int(v) for v in labelled["label"])
        splits = {}
        for split in SPLITS:
            part = frame[frame["split"] == split]
            splits[split] = {
                "dialogues": int(part["dialog_id"].nunique()),
                "labelled": int(part["label"].notna().sum()),
            }
        by_dataset = ({"seasons": int(frame["session"].nunique()), "speakers": int(frame["speaker"].nunique())}
                      if self.dataset == "meld" else
                      {"sessions": len(self.session_dirs), "without_alignment": int(frame["wdseg_path"].isna().sum())})
        return {
            "dataset": self.dataset,
            **by_dataset,
            "dialogues": int(frame["dialog_id"].nunique()),
            "utterances": int(len(frame)),
            "labelled": int(len(labelled)),
            "label_counts": {name: label_counts.get(i, 0) for i, name in enumerate(self.label_names)},
            "splits": splits,
            "without_video": int(frame["video_path"].isna().sum()),
            "rejects": dict(sorted(Counter(self.rejects["reason"]).items())),
        }


def scan_corpus(root: str | Path, labels: str = "merc6", strict: bool = False, progress: bool | None = False) -> ScanResult:
    """Scan the raw IEMOCAP tree under ``root`` (a local folder or ``s3://bucket/prefix``); see
    the module docstring.

    With ``strict=True`` the first malformed input raises :class:`~dgnode.errors.InputError`
    (``path:line: reason: detail``); skips (junk, ``XX`` segments, comment lines) never do.
    ``progress``: show a progress bar (``None``: only on a terminal).
    """
    scheme = get_scheme(labels)
    tree = open_tree(root)
    log = RejectLog(strict=strict)
    sessions = find_session_dirs(tree, log)
    if not sessions:
        raise InputError("no Session1..Session5 folder found at any depth (ignoring __MACOSX and dot-folders)",
                         tree.root)
    work = []
    for number, session_dir in sorted(sessions.items()):
        work.extend(_session_dialogues(tree, number, session_dir, log))
    rows: list[dict[str, Any]] = []
    from tqdm import tqdm

    readers = tree.readers([_text_files(tree, job) for job in work])
    for job, read in tqdm(zip(work, readers), total=len(work), desc="scan", unit="dialogue",
                          disable=None if progress is None else not progress):
        rows.extend(_scan_dialogue(tree, job, read, scheme, log))
    return ScanResult.from_rows(rows, log, scheme, tree.root,
                                session_dirs={n: str(p) for n, p in sorted(sessions.items())})


def write_scan(result: ScanResult, out_dir: str | Path | Location) -> dict[str, Location]:
    """Write ``manifest.parquet`` and ``rejects.parquet`` into ``out_dir`` (a folder or an
    ``s3://`` prefix); returns their locations."""
    paths = scan_outputs(out_dir)
    out = paths["manifest"].parent
    try:
        out.mkdir()
        write_manifest(
            result.manifest,
            paths["manifest"],
            {"label_names": list(result.label_names), "label_scheme": result.label_scheme, "corpus_root": result.corpus_root,
             "dataset": result.dataset},
        )
        write_rejects(result.rejects, paths["rejects"])
    except OSError as error:
        # Each file is written atomically: a failed write leaves the earlier file, never half of one.
        raise EnvironmentFault(
            f"cannot write the scan's output ({error.strerror or error}): make the folder writable or free space "
            "on it, then run the scan again", path=str(out)) from None
    return paths


# --- discovery -----------------------------------------------------------------------------


def list_entries(tree: CorpusTree, directory: str, log: RejectLog) -> list[Entry]:
    """Entries of ``directory`` sorted by name, without junk; junk, dot-entries and entries that
    cannot be followed (a symlink loop: it drops only itself) are logged."""
    kept = []
    try:
        entries = tree.entries(directory)
    except OSError as error:
        log.add(R.UNREADABLE, directory, f"cannot list the folder: {error.strerror or error}")
        return kept
    for entry in entries:
        name = entry.name
        if name == MACOSX_DIR:
            count = tree.count_files(entry.path)
            log.add(R.MACOS_JUNK, entry.path, f"macOS archive metadata folder ({count} files) not read")
        elif is_macos_junk_name(name):
            log.add(R.MACOS_JUNK, entry.path, "macOS metadata file not read")
        elif name.startswith("."):
            log.add(R.HIDDEN_ENTRY, entry.path, "hidden entry not read")
        elif entry.error is not None:
            error = entry.error
            loop = " (a symlink loop)" if error.errno == errno.ELOOP else ""
            log.add(R.UNREADABLE, entry.path, f"cannot follow the entry: {error.strerror or error}{loop}; not read")
        else:
            kept.append(entry)
    return kept


def find_session_dirs(tree: CorpusTree, log: RejectLog) -> dict[int, str]:
    """``{session number: folder}`` for ``Session[1-5]`` folders at any depth, shallowest first."""
    match = SESSION_DIR_RE.match(tree.name(tree.root))
    if match:
        return {int(match.group(1)): tree.root}
    sessions: dict[int, str] = {}
    visited = {tree.identity(tree.root)}
    queue = deque([tree.root])
    while queue:
        directory = queue.popleft()
        for entry in list_entries(tree, directory, log):
            if not entry.is_dir:
                continue
            match = SESSION_DIR_RE.match(entry.name)
            if match:
                number = int(match.group(1))
                if number in sessions:
                    log.add(R.DUPLICATE_SESSION, entry.path, f"Session{number} already read from {sessions[number]}")
                else:
                    sessions[number] = entry.path
                continue
            real = tree.identity(entry.path)
            if real not in visited:  # symlink loops
                visited.add(real)
                queue.append(entry.path)
    return sessions


def _dialogue_files(tree: CorpusTree, directory: str, suffix: str, log: RejectLog,
                    subfolders: frozenset[str] = frozenset()) -> dict[str, str]:
    """``{dialog_id: path}`` for entries ``<dialog><suffix>``; anything else is logged."""
    found: dict[str, str] = {}
    if not tree.is_dir(directory):
        return found
    for entry in list_entries(tree, directory, log):
        if entry.is_dir:
            if entry.name not in subfolders:
                log.add(R.UNRECOGNISED_NAME, entry.path, f"unexpected folder; expected <dialog>{suffix} files")
            continue
        stem, dot, ext = entry.name.rpartition(".")
        if dot and "." + ext == suffix and is_dialog_id(stem):
            found[stem] = entry.path
        else:
            log.add(R.UNRECOGNISED_NAME, entry.path, f"expected <dialog>{suffix} with an IEMOCAP dialogue id")
    return found


@dataclass
class _DialogueJob:
    dialog_id: str
    session: int
    session_dir: str
    emo_path: str
    transcription_path: str
    video_path: str | None

    def folder(self, tree: CorpusTree, kind: str) -> str:
        """``sentences/<kind>/<dialog>``: the dialogue's utterance wavs or word alignments."""
        return tree.join(self.session_dir, "sentences", kind, self.dialog_id)


def _session_dialogues(tree: CorpusTree, number: int, session_dir: str, log: RejectLog) -> list[_DialogueJob]:
    dialog_dir = tree.join(session_dir, "dialog")
    emo_dir, transcription_dir = tree.join(dialog_dir, "EmoEvaluation"), tree.join(dialog_dir, "transcriptions")
    for folder in (emo_dir, transcription_dir, tree.join(session_dir, "sentences", "wav")):
        if not tree.is_dir(folder):
            log.add(R.MISSING_FOLDER, folder, "folder missing from the session")
    emo_files = _dialogue_files(tree, emo_dir, ".txt", log, EMO_SUBFOLDERS)
    transcription_files = _dialogue_files(tree, transcription_dir, ".txt", log)
    videos = _dialogue_files(tree, tree.join(dialog_dir, "avi", "DivX"), ".avi", log)
    jobs = []
    for dialog_id in sorted(set(emo_files) | set(transcription_files)):
        emo_path, transcription_path = emo_files.get(dialog_id), transcription_files.get(dialog_id)
        if session_of_dialog(dialog_id) != number:
            for path in (emo_path, transcription_path):
                if path is not None:
                    log.add(R.WRONG_SESSION, path, f"{dialog_id} is not a Session{number} dialogue")
            continue
        if emo_path is None:
            log.add(R.TRANSCRIPTION_WITHOUT_LABELS, transcription_path,
                    f"no EmoEvaluation/{dialog_id}.txt: the dialogue's utterances have no labels")
            continue
        if transcription_path is None:
            log.add(R.LABELS_WITHOUT_TRANSCRIPTION, emo_path,
                    f"no transcriptions/{dialog_id}.txt: the dialogue's utterances have no text")
            continue
        jobs.append(_DialogueJob(dialog_id, number, session_dir, emo_path, transcription_path, videos.get(dialog_id)))
    return jobs


def _text_files(tree: CorpusTree, job: _DialogueJob) -> list[str]:
    """The files :func:`_scan_dialogue` reads (what a remote tree reads ahead): no request here."""
    paths = [job.emo_path, job.transcription_path]
    if tree.is_remote:
        alignment_dir = job.folder(tree, "ForcedAlignment")
        if tree.is_dir(alignment_dir):
            paths += [e.path for e in tree.entries(alignment_dir) if not e.is_dir and e.name.endswith(".wdseg")]
    return paths


# --- one dialogue --------------------------------------------------------------------------


def _scan_dialogue(tree: CorpusTree, job: _DialogueJob, read: Reader, scheme: LabelScheme,
                   log: RejectLog) -> list[dict[str, Any]]:
    decoded = {}
    for path, other in ((job.emo_path, job.transcription_path), (job.transcription_path, job.emo_path)):
        try:
            decoded[path] = decode_lines(read(path), path)
            problem = (R.UNDECODABLE, "binary content (NUL bytes), not a text file") if decoded[path].binary else None
        except OSError as error:
            problem = (R.UNREADABLE, f"cannot read the file: {error.strerror or error}")
        if problem:
            log.add(problem[0], path, problem[1])
            reason = R.TRANSCRIPTION_WITHOUT_LABELS if other == job.transcription_path else R.LABELS_WITHOUT_TRANSCRIPTION
            log.add(reason, other, f"its counterpart {tree.name(path)} is unusable")
            return []
    emo_lines, transcription_lines = decoded[job.emo_path], decoded[job.transcription_path]
    labels = parse_emo_evaluation(emo_lines.lines, job.emo_path, job.dialog_id, log)
    transcript = parse_transcription(transcription_lines.lines, job.transcription_path, job.dialog_id, log)
    lines_by_id: dict[str, TranscriptLine] = {line.utt_id: line for line in transcript.records}
    blocks_by_id: dict[str, EmoBlock] = {block.utt_id: block for block in labels.records}
    for line in transcript.records:
        if line.utt_id not in blocks_by_id and line.utt_id not in labels.dropped_ids:
            log.add(R.TRANSCRIPTION_LINE_WITHOUT_LABEL, job.transcription_path,
                    f"{line.utt_id} has no block in {tree.name(job.emo_path)}", line=line.line, utt_id=line.utt_id)

    wav_dir, alignment_dir = job.folder(tree, "wav"), job.folder(tree, "ForcedAlignment")
    wav_names = _file_names(tree, wav_dir, log, expected_suffix=".wav")
    alignment_names = _file_names(tree, alignment_dir, log)
    split = standard_split(job.dialog_id, job.session)
    wav_prefix, alignment_prefix = f"{wav_dir}/", f"{alignment_dir}/"
    rows = []
    for block in labels.records:
        line = lines_by_id.get(block.utt_id)
        if line is None:
            if block.utt_id not in transcript.dropped_ids:
                log.add(R.LABEL_WITHOUT_TRANSCRIPTION_LINE, job.emo_path,
                        f"{block.utt_id} has no line in {tree.name(job.transcription_path)}", line=block.line,
                        utt_id=block.utt_id)
            continue
        wav_name = f"{block.utt_id}.wav"
        if wav_name not in wav_names:
            log.add(R.MISSING_WAV, f"{wav_prefix}{wav_name}", f"utterance wav of {block.utt_id} not found",
                    utt_id=block.utt_id)
            continue
        wdseg_path, word_alignment = None, []
        if f"{block.utt_id}.wdseg" in alignment_names:
            candidate = f"{alignment_prefix}{block.utt_id}.wdseg"
            try:
                word_alignment = words(parse_wdseg(candidate, read))
                wdseg_path = candidate
            except WdsegError as error:
                log.add(R.MALFORMED_WDSEG, candidate, f"{error}; the utterance is kept without word alignment",
                        line=error.line, utt_id=block.utt_id)
        name = parse_utterance_id(block.utt_id)
        majority = block.majority
        rows.append(
            {
                "dialog_id": job.dialog_id,
                "utt_id": block.utt_id,
                "session": job.session,
                "speaker": name.speaker,
                "speaker_side": name.speaker_side,
                "start_s": block.start_s,
                "end_s": block.end_s,
                "order": -1,
                "label_code": block.code,
                "label": scheme.label_of(block.code, majority),
                "majority_category": majority,
                "text": line.text,
                "wav_path": f"{wav_prefix}{wav_name}",
                "video_path": job.video_path,
                "wdseg_path": wdseg_path,
                "words": word_alignment,
                "split": split,
            }
        )
    rows.sort(key=lambda row: (row["start_s"], row["end_s"], row["utt_id"]))
    for order, row in enumerate(rows):
        row["order"] = order
    return rows


def _file_names(tree: CorpusTree, directory: str, log: RejectLog, expected_suffix: str | None = None) -> set[str]:
    """Names of the files in ``directory``; with ``expected_suffix``, others are logged."""
    if not tree.is_dir(directory):
        return set()
    names = set()
    for entry in list_entries(tree, directory, log):
        stem, _, ext = entry.name.rpartition(".")
        if expected_suffix and not (entry.is_file and "." + ext == expected_suffix and parse_utterance_id(stem)):
            log.add(R.UNRECOGNISED_NAME, entry.path, f"expected <utterance id>{expected_suffix}")
            continue
        names.add(entry.name)
    return names
