"""A synthetic IEMOCAP release in the exact raw format, deterministic for a seed.

::

    summary = synthesize_corpus("/tmp/mini", SynthConfig(seed=0))          # ~6 dialogues, with AVIs
    summary = synthesize_corpus("/tmp/full", SynthConfig(structure="dgnode/data/iemocap_structure.json",
                                                        video=False))    # the real 151-dialogue structure
    summary.expected_manifest("merc6")   # the rows `scan_corpus(out_dir)` must return

The tree is ``OUT/IEMOCAP_full_release/Session{n}/...`` (one level deep, as in circulating
copies) plus an ``OUT/__MACOSX/`` folder. Each dialogue has:

* ``dialog/EmoEvaluation/<dialog>.txt``: header, blank lines, blocks F-first (not
  chronological), per-rater ``C-``/``A-`` lines, at least one ``xxx`` block, one empty ``dom``;
  the subfolders ``Categorical/``, ``Attribute/``, ``Self-evaluation/`` with per-rater files;
* ``dialog/transcriptions/<dialog>.txt``: ``%08.4f`` times, overlapping speech, out-of-order
  lines, ``XX`` segment lines, comment lines, noise tags such as ``[LAUGHTER]`` in the text;
* ``sentences/wav/<dialog>/<utt>.wav`` (16 kHz mono int16, exactly ``round((end - start) * 16000)``
  samples) and ``sentences/ForcedAlignment/<dialog>/<utt>.wdseg`` (Sphinx layout with a ``WORD(2)``
  variant, ``<sil>``, a ``++LAUGHTER++``-style filler), one utterance without ``.wdseg``;
* ``dialog/lab/Ses0<n>_F|M/<dialog>.lab``;
* with ``video=True``: ``dialog/wav/<dialog>.wav`` (16 kHz stereo) and
  ``dialog/avi/DivX/<dialog>.avi`` (see :mod:`dgnode.corpus.synth_media`). ``video=False`` omits
  this dialogue-level media; utterance wavs are always written, since the scan requires them.

macOS junk (``.DS_Store``, 4096-byte AppleDouble ``._*`` sidecars, ``__MACOSX/``) is placed in
folders the scan lists, so :attr:`SynthSummary.expected_rejects` can count it exactly.

**Mini corpus** (default): the trap dialogues :data:`TRAP_DIALOGUES` (an F and an M recording,
``Ses03M_impro05a``, ``Ses05M_script01_1`` with ``Ses05M_script01_1b``) plus ``dialogs - 5`` real
dialogue ids drawn by the seed; 8-12 utterances of 1-4 s each. Across the corpus: all six MERC
classes, ``sur fea oth dis``, an ``xxx`` whose raters' majority is Happiness (``hap`` under
``merc6``), an ``xxx`` where Happiness ties (one rater names it twice on one line, which counts
once), an ``xxx`` with another majority. One transcription is CRLF and cp1252-encoded
(``café``), one EmoEvaluation is CRLF.

**Structure corpus** (``structure=...``): the dialogue ids, speaker letters and labels of the
structure file in conversation order, plus unlabelled utterances (``xxx sur fea oth dis``) so
that each session has its real utterance count (10039 in all) and the raw code counts equal the
real ones; ``round(53 / 648 * n_hap)`` of the ``hap`` utterances become ``xxx`` with a Happiness
majority, so ``raw6`` gives 7380 and ``merc6`` exactly the structure's 7433 on the real file.
Utterances are short (0.12-0.36 s by default) to keep the ~10k wavs small.
"""

from __future__ import annotations

import json
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from dgnode.options import ConfigError
from dgnode.corpus.labels import CODE_TO_CATEGORY, MERC6_LABELS, get_scheme
from dgnode.corpus.manifest import manifest_frame
from dgnode.corpus.names import (
    APPLEDOUBLE_MAGIC,
    APPLEDOUBLE_SIZE,
    DIALOG_RE,
    DS_STORE_MAGIC,
    MACOSX_DIR,
    session_of_dialog,
)
from dgnode.corpus import rejects as R
from dgnode.corpus.splits import known_dialogues, standard_split
from dgnode.corpus.synth_media import (
    NOISE_STD,
    SAMPLE_RATE,
    tone,
    utterance_samples,
    write_dialogue_avi,
    write_wav,
)
from dgnode.errors import InputError

RELEASE_DIR = "IEMOCAP_full_release"
TRAP_DIALOGUES = ("Ses01F_impro01", "Ses01M_impro01", "Ses03M_impro05a", "Ses05M_script01_1", "Ses05M_script01_1b")
EMO_HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]"
SPECIAL_CODES = ("sur", "fea", "oth", "dis")
NOISE_TAGS = ("LAUGHTER", "BREATHING", "GARBAGE", "LIPSMACK")
SILENCE_FILL = "<sil>"

# Facts of the real release that a structure corpus reproduces (see shared/iemocap_format.md).
REAL_SESSION_UTTERANCES = {1: 1819, 2: 1811, 3: 2136, 4: 2103, 5: 2170}
REAL_SESSION_LABELLED = {1: 1373, 2: 1356, 3: 1569, 4: 1512, 5: 1623}  # merc6, per the structure file
REAL_UNLABELLED_CODES = {"xxx": 2454, "sur": 107, "fea": 40, "oth": 3, "dis": 2}
REAL_HAPPINESS_XXX, REAL_HAP = 53, 648
REAL_MISSING_ALIGNMENTS = ("Ses03F_impro07_M030", "Ses03M_impro03_M001")
REAL_OUT_OF_ORDER_FRACTION = 67 / 151

VOCABULARY = (
    "yes no well okay i you we they it this that what where why how know think really just maybe "
    "never always here there now then today tomorrow want need going come look tell said sorry "
    "please thank right wrong good fine great little time money home work again sure something "
    "nothing everything believe listen wait stop leave stay"
).split()
TRANSCRIPT_COMMENT = "(the actors pause and the take resumes)"
CP1252_WORD = "caf\u00e9"


@dataclass
class SynthConfig:
    """What :func:`synthesize_corpus` writes."""

    seed: int = 0
    dialogs: int | None = None  # mini corpus: default 6, at least the 5 trap dialogues
    structure: str | None = None  # a structure JSON: follow its dialogues, speakers and labels
    video: bool = True  # dialogue-level media: the stereo wav and the AVI
    dialogue_seconds: float | None = None  # fill each dialogue with utterances up to this length
    utterances_per_dialogue: tuple[int, int] = (8, 12)  # >= 8: the first dialogue holds 8 required codes
    utterance_seconds: tuple[float, float] | None = None  # default (1, 4) mini, (0.12, 0.36) structure
    junk: bool = True  # macOS junk files and the __MACOSX folder

    def __post_init__(self) -> None:
        if self.structure is not None and self.dialogs is not None:
            raise ConfigError("dialogs: a structure corpus has the structure's dialogues; leave dialogs unset")
        if self.structure is not None and self.dialogue_seconds is not None:
            raise ConfigError("dialogue_seconds: only for the mini corpus; a structure corpus has its own lengths")
        if self.structure is None:
            count = 6 if self.dialogs is None else self.dialogs
            if not len(TRAP_DIALOGUES) <= count <= len(known_dialogues()):
                raise ConfigError(f"dialogs: expected {len(TRAP_DIALOGUES)}..{len(known_dialogues())} "
                                  f"(the trap dialogues always exist), got {count}")
        low, high = self.utterances_per_dialogue
        if not 8 <= low <= high:
            raise ConfigError(f"utterances_per_dialogue: expected 8 <= min <= max, got {self.utterances_per_dialogue}")
        if self.utterance_seconds is not None:
            low_s, high_s = self.utterance_seconds
            if not 0.1 <= low_s <= high_s:
                raise ConfigError(f"utterance_seconds: expected 0.1 <= min <= max, got {self.utterance_seconds}")
        if self.dialogue_seconds is not None and self.dialogue_seconds < 30:
            raise ConfigError(f"dialogue_seconds: expected at least 30 s, got {self.dialogue_seconds}")

    @property
    def seconds_range(self) -> tuple[float, float]:
        if self.utterance_seconds is not None:
            return tuple(self.utterance_seconds)
        return (0.12, 0.36) if self.structure else (1.0, 4.0)


@dataclass
class SynthUtterance:
    utt_id: str
    speaker_letter: str
    start_s: float
    end_s: float
    code: str
    votes: list[tuple[str, tuple[str, ...]]]  # (rater, categories) per C- line
    majority: str | None  # the raters' majority category by design
    text: str
    tokens: list[str]  # what the aligner recognised: words (upper case) and fillers
    has_wdseg: bool = True
    variant_token: int | None = None  # index of the token written as WORD(2)
    words: list[dict] = field(default_factory=list)  # expected alignment, set when the .wdseg is written

    @property
    def samples(self) -> int:
        return utterance_samples(self.start_s, self.end_s)


@dataclass
class SynthDialogue:
    dialog_id: str
    session: int
    mocap_letter: str
    utterances: list[SynthUtterance]  # conversation order (strictly increasing start)
    duration_s: float
    xx_lines: int = 0
    comment_lines: int = 0
    out_of_order: bool = False
    transcription_encoding: str = "utf-8"
    crlf_files: tuple[str, ...] = ()  # "emo" and/or "transcription"
    empty_dom_utt: str | None = None


@dataclass
class SynthSummary:
    """What was written; :meth:`expected_manifest` is what a scan of ``out_dir`` must return."""

    out_dir: Path
    release_dir: Path
    dialogues: list[SynthDialogue]
    video: bool
    files_written: int
    bytes_written: int
    seconds: float
    junk_paths: list[Path]
    expected_rejects: dict[str, int]

    def utterances(self) -> Iterator[tuple[SynthDialogue, SynthUtterance]]:
        for dialogue in self.dialogues:
            for utterance in dialogue.utterances:
                yield dialogue, utterance

    def session_dir(self, session: int) -> Path:
        return self.release_dir.resolve() / f"Session{session}"

    def video_path(self, dialogue: SynthDialogue) -> Path | None:
        if not self.video:
            return None
        return self.session_dir(dialogue.session) / "dialog" / "avi" / "DivX" / f"{dialogue.dialog_id}.avi"

    def dialogue_wav_path(self, dialogue: SynthDialogue) -> Path | None:
        if not self.video:
            return None
        return self.session_dir(dialogue.session) / "dialog" / "wav" / f"{dialogue.dialog_id}.wav"

    def wav_path(self, dialogue: SynthDialogue, utterance: SynthUtterance) -> Path:
        return self.session_dir(dialogue.session) / "sentences" / "wav" / dialogue.dialog_id / f"{utterance.utt_id}.wav"

    def wdseg_path(self, dialogue: SynthDialogue, utterance: SynthUtterance) -> Path:
        return (self.session_dir(dialogue.session) / "sentences" / "ForcedAlignment" / dialogue.dialog_id
                / f"{utterance.utt_id}.wdseg")

    def code_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(u.code for _, u in self.utterances()).items()))

    def expected_manifest(self, labels: str = "merc6") -> pd.DataFrame:
        """The manifest rows, in scan order (session, dialogue id, start time)."""
        scheme = get_scheme(labels)
        rows: list[dict[str, Any]] = []
        for dialogue in sorted(self.dialogues, key=lambda d: (d.session, d.dialog_id)):
            video = self.video_path(dialogue)
            for order, u in enumerate(dialogue.utterances):
                rows.append({
                    "dialog_id": dialogue.dialog_id,
                    "utt_id": u.utt_id,
                    "session": dialogue.session,
                    "speaker": f"Ses{dialogue.session:02d}.{u.speaker_letter}",
                    "speaker_side": "left" if u.speaker_letter == dialogue.mocap_letter else "right",
                    "start_s": u.start_s,
                    "end_s": u.end_s,
                    "order": order,
                    "label_code": u.code,
                    "label": scheme.label_of(u.code, u.majority),
                    "majority_category": u.majority,
                    "text": u.text,
                    "wav_path": str(self.wav_path(dialogue, u)),
                    "video_path": str(video) if video else None,
                    "wdseg_path": str(self.wdseg_path(dialogue, u)) if u.has_wdseg else None,
                    "words": u.words if u.has_wdseg else [],
                    "split": standard_split(dialogue.dialog_id, dialogue.session),
                })
        return manifest_frame(rows)

    def label_counts(self, labels: str = "merc6") -> dict[str, int]:
        scheme = get_scheme(labels)
        counts = Counter(scheme.label_of(u.code, u.majority) for _, u in self.utterances())
        return {name: counts.get(index, 0) for index, name in enumerate(scheme.label_names)}


def synthesize_corpus(out_dir: str | Path, config: SynthConfig | None = None, progress: bool | None = False) -> SynthSummary:
    """Write a synthetic raw IEMOCAP release under ``out_dir``; see the module docstring."""
    config = config or SynthConfig()
    began = time.perf_counter()
    dialogues = plan_corpus(config)
    out = Path(out_dir)
    release = out / RELEASE_DIR
    writer = _Writer()
    from tqdm import tqdm

    for dialogue in tqdm(dialogues, desc="synth", unit="dialogue", disable=None if progress is None else not progress):
        _write_dialogue(writer, release, dialogue, config)
    junk = _write_junk(writer, out, release, dialogues, config) if config.junk else []
    expected = Counter()
    expected[R.MACOS_JUNK] = len(junk) + (1 if config.junk else 0)  # the __MACOSX folder is one row
    expected[R.XX_SEGMENT] = sum(d.xx_lines for d in dialogues)
    expected[R.COMMENT_LINE] = sum(d.comment_lines for d in dialogues)
    return SynthSummary(
        out_dir=out,
        release_dir=release,
        dialogues=dialogues,
        video=config.video,
        files_written=writer.files,
        bytes_written=writer.bytes,
        seconds=time.perf_counter() - began,
        junk_paths=junk,
        expected_rejects={reason: count for reason, count in sorted(expected.items()) if count},
    )


# --- planning: what each dialogue says, with no I/O ---------------------------------------


def plan_corpus(config: SynthConfig) -> list[SynthDialogue]:
    """The dialogues of the corpus, sorted by id, with utterances in conversation order."""
    if config.structure is not None:
        return _plan_structure(config)
    rng = np.random.default_rng(config.seed)
    count = 6 if config.dialogs is None else config.dialogs
    others = sorted(known_dialogues() - set(TRAP_DIALOGUES))
    extra = [str(d) for d in rng.choice(others, size=count - len(TRAP_DIALOGUES), replace=False)]
    dialogues = []
    for index, dialog_id in enumerate(sorted(list(TRAP_DIALOGUES) + extra)):
        dialogues.append(_plan_mini_dialogue(dialog_id, index, config))
    return dialogues


def _dialogue_rng(config: SynthConfig, dialog_id: str) -> np.random.Generator:
    # Seeded by (seed, id): a dialogue's content does not depend on which others exist.
    return np.random.default_rng([config.seed, zlib.crc32(dialog_id.encode())])


def _plan_mini_dialogue(dialog_id: str, index: int, config: SynthConfig) -> SynthDialogue:
    rng = _dialogue_rng(config, dialog_id)
    xxx_variant = ("happiness", "tie", "other")[index] if index < 3 else str(rng.choice(["happiness", "tie", "other"]))
    required = [("xxx", xxx_variant)]
    if index < len(SPECIAL_CODES):
        required.append((SPECIAL_CODES[index], None))
    if index == 0:
        required.extend((code, None) for code in MERC6_LABELS)
    low, high = config.seconds_range
    if config.dialogue_seconds is None:
        count = max(int(rng.integers(config.utterances_per_dialogue[0], config.utterances_per_dialogue[1] + 1)),
                    len(required))
        durations = [round(float(rng.uniform(low, high)), 4) for _ in range(count)]
    else:
        durations = []
        while sum(durations) < config.dialogue_seconds:  # then keep those that end in time
            durations.append(round(float(rng.uniform(low, high)), 4))
        count = len(durations)
    first = str(rng.choice(["F", "M"]))
    speakers = [first, "M" if first == "F" else "F"] + [str(rng.choice(["F", "M"])) for _ in range(count - 2)]
    starts = _layout_times(rng, speakers, durations)
    if config.dialogue_seconds is not None:
        count = sum(1 for start, length in zip(starts, durations) if start + length <= config.dialogue_seconds - 0.5)
        durations, speakers, starts = durations[:count], speakers[:count], starts[:count]
        if count < len(required):
            raise ConfigError(f"dialogue_seconds: {config.dialogue_seconds} s holds {count} utterances of "
                              f"{low}-{high} s; {dialog_id} needs at least {len(required)}")
    codes = required + [(str(rng.choice(MERC6_LABELS)), None) for _ in range(count - len(required))]
    codes = [codes[i] for i in rng.permutation(count)]
    utterances = _make_utterances(rng, dialog_id, speakers, starts, durations, codes, words=(2, 7))
    noisy = int(rng.integers(count))
    _add_noise_tag(rng, utterances[noisy], "LAUGHTER" if index == 0 else str(rng.choice(NOISE_TAGS)))
    utterances[-1 if noisy != count - 1 else 0].has_wdseg = False  # never the one with the filler
    variant_candidates = [u for u in utterances if u.has_wdseg and any(not t.startswith("++") for t in u.tokens)]
    _set_variant(rng, variant_candidates[0])
    last_end = max(u.end_s for u in utterances)
    duration = config.dialogue_seconds or round(last_end + float(rng.uniform(1.0, 2.0)), 4)
    dialogue = SynthDialogue(
        dialog_id=dialog_id,
        session=session_of_dialog(dialog_id),
        mocap_letter=DIALOG_RE.match(dialog_id).group(2),
        utterances=utterances,
        duration_s=duration,
        xx_lines=1,
        comment_lines=1,
        out_of_order=True,
    )
    _apply_encoding_traps(dialogue)
    return dialogue


def _apply_encoding_traps(dialogue: SynthDialogue) -> None:
    if dialogue.dialog_id == "Ses01M_impro01":
        dialogue.transcription_encoding = "cp1252"
        dialogue.crlf_files = ("transcription",)
        target = dialogue.utterances[1]
        target.text = target.text[:-1] + f" at the {CP1252_WORD}" + target.text[-1]
        target.tokens = target.tokens + ["AT", "THE", CP1252_WORD.upper()]
    elif dialogue.dialog_id == "Ses03M_impro05a":
        dialogue.crlf_files = ("emo",)


def _plan_structure(config: SynthConfig) -> list[SynthDialogue]:
    structure_path = Path(config.structure)
    structure = _load_structure(structure_path)
    names = structure["labels"]
    rng = np.random.default_rng(config.seed)
    dialog_ids = sorted(structure["dialogues"])
    labelled_per_session = Counter()
    for dialog_id in dialog_ids:
        labelled_per_session[session_of_dialog(dialog_id)] += len(structure["dialogues"][dialog_id]["labels"])
    # Which hap utterances are written as xxx with a Happiness majority.
    hap_positions = [(d, i) for d in dialog_ids for i, label in enumerate(structure["dialogues"][d]["labels"])
                     if names[label] == "hap"]
    happy_xxx_count = round(REAL_HAPPINESS_XXX / REAL_HAP * len(hap_positions))
    happy_xxx = {hap_positions[i] for i in rng.choice(len(hap_positions), size=happy_xxx_count, replace=False)}
    # Unlabelled extras: the real per-session utterance counts and raw code counts when the
    # structure is the real one, the real proportions otherwise.
    real = dict(labelled_per_session) == REAL_SESSION_LABELLED
    if real:
        extras_per_session = {s: REAL_SESSION_UTTERANCES[s] - labelled_per_session[s] for s in labelled_per_session}
        pool = [code for code, n in REAL_UNLABELLED_CODES.items() for _ in range(n)]
        pool = [pool[i] for i in rng.permutation(len(pool))]
    else:
        total_real = sum(REAL_SESSION_UTTERANCES.values())
        ratio = (total_real - sum(REAL_SESSION_LABELLED.values())) / sum(REAL_SESSION_LABELLED.values())
        extras_per_session = {s: round(n * ratio) for s, n in labelled_per_session.items()}
        codes, counts = zip(*REAL_UNLABELLED_CODES.items())
        p = np.array(counts, dtype=float) / sum(counts)
        pool = [str(c) for c in rng.choice(codes, size=sum(extras_per_session.values()), p=p)]
    extras_per_dialogue: dict[str, list[str]] = {}
    taken = 0
    for session in sorted(extras_per_session):
        in_session = [d for d in dialog_ids if session_of_dialog(d) == session]
        weights = np.array([len(structure["dialogues"][d]["labels"]) for d in in_session], dtype=float)
        split = rng.multinomial(extras_per_session[session], weights / weights.sum())
        for dialog_id, n in zip(in_session, split):
            extras_per_dialogue[dialog_id] = pool[taken : taken + n]
            taken += n
    dialogues = []
    for dialog_id in dialog_ids:
        entry = structure["dialogues"][dialog_id]
        dialogues.append(
            _plan_structure_dialogue(dialog_id, entry["speakers"], [names[label] for label in entry["labels"]],
                                     happy_xxx, extras_per_dialogue.get(dialog_id, []), config)
        )
    return dialogues


def _plan_structure_dialogue(
    dialog_id: str,
    speakers: list[str],
    codes: list[str],
    happy_xxx: set[tuple[str, int]],
    extra_codes: list[str],
    config: SynthConfig,
) -> SynthDialogue:
    rng = _dialogue_rng(config, dialog_id)
    sequence = []  # (speaker, (code, variant))
    for i, (speaker, code) in enumerate(zip(speakers, codes)):
        sequence.append((speaker, ("xxx", "happiness") if (dialog_id, i) in happy_xxx else (code, None)))
    positions = sorted(int(p) for p in rng.integers(0, len(sequence) + 1, size=len(extra_codes)))
    for offset, (position, code) in enumerate(zip(positions, extra_codes)):
        variant = str(rng.choice(["tie", "other"])) if code == "xxx" else None
        sequence.insert(position + offset, (str(rng.choice(["F", "M"])), (code, variant)))
    low, high = config.seconds_range
    durations = [round(float(rng.uniform(low, high)), 4) for _ in sequence]
    speaker_letters = [s for s, _ in sequence]
    starts = _layout_times(rng, speaker_letters, durations)
    utterances = _make_utterances(rng, dialog_id, speaker_letters, starts, durations, [c for _, c in sequence],
                                  words=(1, 3))
    for utterance in utterances:
        if rng.random() < 0.05:
            _add_noise_tag(rng, utterance, str(rng.choice(NOISE_TAGS)))
        if rng.random() < 0.03 and any(not t.startswith("++") for t in utterance.tokens):
            _set_variant(rng, utterance)
        utterance.has_wdseg = utterance.utt_id not in REAL_MISSING_ALIGNMENTS
    last_end = max(u.end_s for u in utterances)
    dialogue = SynthDialogue(
        dialog_id=dialog_id,
        session=session_of_dialog(dialog_id),
        mocap_letter=DIALOG_RE.match(dialog_id).group(2),
        utterances=utterances,
        duration_s=round(last_end + float(rng.uniform(0.5, 1.0)), 4),
        xx_lines=int(rng.random() < 0.3),
        comment_lines=int(rng.random() < 0.1),
        out_of_order=bool(rng.random() < REAL_OUT_OF_ORDER_FRACTION),
    )
    _apply_encoding_traps(dialogue)
    return dialogue


def _load_structure(path: Path) -> dict:
    try:
        structure = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("structure file not found", str(path)) from None
    except json.JSONDecodeError as error:
        raise InputError(f"not valid JSON: {error.msg}", str(path), error.lineno) from None
    if not isinstance(structure, dict) or not isinstance(structure.get("dialogues"), dict) or "labels" not in structure:
        raise InputError("expected an object with 'labels' and 'dialogues' {id: {speakers, labels}}", str(path))
    names = structure["labels"]
    if not set(names) <= set(CODE_TO_CATEGORY):
        raise InputError(f"labels {names} must be raw IEMOCAP codes such as {list(MERC6_LABELS)}", str(path))
    for dialog_id, entry in structure["dialogues"].items():
        if not DIALOG_RE.match(dialog_id):
            raise InputError(f"dialogues: {dialog_id!r} is not an IEMOCAP dialogue id", str(path))
        speakers, labels = entry.get("speakers"), entry.get("labels")
        if not isinstance(speakers, list) or not isinstance(labels, list) or len(speakers) != len(labels):
            raise InputError(f"dialogues.{dialog_id}: expected lists 'speakers' and 'labels' of equal length", str(path))
        if not set(speakers) <= {"F", "M"}:
            raise InputError(f"dialogues.{dialog_id}.speakers: expected letters F or M", str(path))
        if not all(isinstance(x, int) and 0 <= x < len(names) for x in labels):
            raise InputError(f"dialogues.{dialog_id}.labels: expected indices 0..{len(names) - 1}", str(path))
    return structure


def _layout_times(rng: np.random.Generator, speakers: list[str], durations: list[float]) -> list[float]:
    """Start times, strictly increasing: gaps, and overlaps between different speakers only.

    The first two utterances always overlap when their speakers differ.
    """
    mean = float(np.mean(durations))
    starts: list[float] = []
    last_end = {"F": -1.0, "M": -1.0}
    t = round(float(rng.uniform(0.3, 1.5)), 4)
    for i, (speaker, duration) in enumerate(zip(speakers, durations)):
        start = max(t, last_end[speaker] + 0.05)
        if starts:
            start = max(start, starts[-1] + 0.01)
        start = round(start, 4)
        end = round(start + duration, 4)
        starts.append(start)
        last_end[speaker] = end
        overlap = i + 1 < len(speakers) and speakers[i + 1] != speaker and (i == 0 or rng.random() < 0.25)
        t = end - float(rng.uniform(0.15, 0.45)) * duration if overlap else end + float(rng.uniform(0.05, 0.4)) * mean
    return starts


_VOTE_RATERS = ("E1", "E2", "E3", "E4", "E5", "E6")


def _votes(rng: np.random.Generator, code: str, variant: str | None, speaker: str):
    """Rater lines for an utterance and the majority category they give by design."""
    raters = [str(r) for r in rng.choice(_VOTE_RATERS, size=3, replace=False)]
    if rng.random() < 0.3:
        raters[-1] = f"{speaker}1"  # the actor's self-evaluation
    if code != "xxx":
        category = CODE_TO_CATEGORY[code]
        others = [c for c in CODE_TO_CATEGORY.values() if c != category]
        second, third = (str(c) for c in rng.choice(others, size=2, replace=False))
        votes = [(category,), (category, second) if rng.random() < 0.4 else (category,),
                 (category,) if rng.random() < 0.5 else (third,)]
        majority = category
    else:
        raters.append("E6" if "E6" not in raters else "E5" if "E5" not in raters else "E4")
        if variant == "happiness":
            votes = [("Happiness",), ("Happiness", "Surprise"), ("Excited",), ("Neutral",)]
            majority = "Happiness"
        elif variant == "tie":
            # Happiness twice on one line counts once: a tie with Anger, so no majority.
            votes = [("Happiness", "Happiness"), ("Anger",), ("Anger", "Frustration"), ("Happiness",)]
            majority = None
        else:
            winner = str(rng.choice(["Neutral", "Anger", "Frustration", "Sadness"]))
            votes = [(winner,), (winner,), ("Sadness" if winner != "Sadness" else "Anger",), ("Happiness",)]
            majority = winner
        order = rng.permutation(len(votes))
        votes = [votes[i] for i in order]
    return list(zip(raters, votes)), majority


def _sentence(rng: np.random.Generator, words: tuple[int, int]) -> tuple[str, list[str]]:
    count = int(rng.integers(words[0], words[1] + 1))
    chosen = [str(w) for w in rng.choice(VOCABULARY, size=count)]
    text = " ".join(chosen)
    text = text[0].upper() + text[1:] + str(rng.choice([".", "?", "!", "."]))
    return text, [w.upper() for w in chosen]


def _make_utterances(
    rng: np.random.Generator,
    dialog_id: str,
    speakers: list[str],
    starts: list[float],
    durations: list[float],
    codes: list[tuple[str, str | None]],
    words: tuple[int, int],
) -> list[SynthUtterance]:
    counters = {"F": 0, "M": 0}
    utterances = []
    for speaker, start, duration, (code, variant) in zip(speakers, starts, durations, codes):
        utt_id = f"{dialog_id}_{speaker}{counters[speaker]:03d}"
        counters[speaker] += 1
        votes, majority = _votes(rng, code, variant, speaker)
        text, tokens = _sentence(rng, words)
        utterances.append(SynthUtterance(utt_id, speaker, start, round(start + duration, 4), code, votes, majority,
                                         text, tokens))
    return utterances


def _add_noise_tag(rng: np.random.Generator, utterance: SynthUtterance, tag: str) -> None:
    """Insert ``[TAG]`` into the text and the matching ``++TAG++`` filler into the alignment."""
    words = utterance.text.split(" ")
    position = int(rng.integers(1, len(words) + 1)) if len(words) > 1 else 1
    words.insert(position, f"[{tag}]")
    if position == len(words) - 1:  # keep the final punctuation at the end of the text
        words[-2], words[-1] = words[-2][:-1], words[-1] + words[-2][-1]
    utterance.text = " ".join(words)
    utterance.tokens.insert(position, f"++{tag}++")
    if utterance.variant_token is not None and utterance.variant_token >= position:
        utterance.variant_token += 1


def _set_variant(rng: np.random.Generator, utterance: SynthUtterance) -> None:
    candidates = [i for i, token in enumerate(utterance.tokens) if not token.startswith("++")]
    utterance.variant_token = int(rng.choice(candidates))


# --- writing --------------------------------------------------------------------------------


class _Writer:
    """Writes files, creating folders, and counts what it wrote."""

    def __init__(self) -> None:
        self.files = 0
        self.bytes = 0
        self._made: set[Path] = set()

    def folder(self, path: Path) -> Path:
        if path not in self._made:
            path.mkdir(parents=True, exist_ok=True)
            self._made.add(path)
        return path

    def text(self, path: Path, lines: list[str], encoding: str = "utf-8", crlf: bool = False) -> None:
        newline = "\r\n" if crlf else "\n"
        self.bytes_(path, (newline.join(lines) + newline).encode(encoding))

    def bytes_(self, path: Path, data: bytes) -> None:
        self.folder(path.parent)
        path.write_bytes(data)
        self.files += 1
        self.bytes += len(data)

    def wav(self, path: Path, samples: np.ndarray) -> None:
        self.folder(path.parent)
        self.bytes += write_wav(path, samples)
        self.files += 1


def _write_dialogue(writer: _Writer, release: Path, dialogue: SynthDialogue, config: SynthConfig) -> None:
    rng = _dialogue_rng(config, dialogue.dialog_id + "/write")
    session_dir = release / f"Session{dialogue.session}"
    dialog_dir = session_dir / "dialog"
    d = dialogue.dialog_id
    writer.text(dialog_dir / "EmoEvaluation" / f"{d}.txt", _emo_lines(rng, dialogue), crlf="emo" in dialogue.crlf_files)
    _write_emo_subfolders(writer, dialog_dir / "EmoEvaluation", dialogue)
    writer.text(dialog_dir / "transcriptions" / f"{d}.txt", _transcription_lines(rng, dialogue),
                encoding=dialogue.transcription_encoding, crlf="transcription" in dialogue.crlf_files)
    for letter in ("F", "M"):
        own = [u for u in dialogue.utterances if u.speaker_letter == letter]
        writer.text(dialog_dir / "lab" / f"Ses{dialogue.session:02d}_{letter}" / f"{d}.lab",
                    [f"{d}.wav"] + [f"{u.start_s:.4f} {u.end_s:.4f} {u.utt_id}" for u in own])

    stereo = _dialogue_audio(rng, dialogue)
    wav_dir = session_dir / "sentences" / "wav" / d
    alignment_dir = session_dir / "sentences" / "ForcedAlignment" / d
    for u in dialogue.utterances:
        channel = 0 if u.speaker_letter == dialogue.mocap_letter else 1
        first = int(round(u.start_s * SAMPLE_RATE))
        writer.wav(wav_dir / f"{u.utt_id}.wav", np.ascontiguousarray(stereo[first : first + u.samples, channel]))
        if u.has_wdseg:
            writer.text(alignment_dir / f"{u.utt_id}.wdseg", _wdseg_lines(rng, u))
    if config.video:
        writer.wav(dialog_dir / "wav" / f"{d}.wav", stereo)
        avi = dialog_dir / "avi" / "DivX" / f"{d}.avi"
        writer.folder(avi.parent)
        write_dialogue_avi(avi, stereo)
        writer.files += 1
        writer.bytes += avi.stat().st_size


def _dialogue_audio(rng: np.random.Generator, dialogue: SynthDialogue) -> np.ndarray:
    """``(n, 2)`` int16: noise plus a tone per utterance on its speaker's channel."""
    total = int(round(dialogue.duration_s * SAMPLE_RATE))
    signal = rng.standard_normal(size=(total, 2), dtype=np.float32) * np.float32(NOISE_STD)
    for index, u in enumerate(dialogue.utterances):
        channel = 0 if u.speaker_letter == dialogue.mocap_letter else 1
        first = int(round(u.start_s * SAMPLE_RATE))
        base = 220.0 if u.speaker_letter == "F" else 120.0
        signal[first : first + u.samples, channel] += tone(u.samples, base + 10.0 * (index % 12))
    return np.clip(np.round(signal), -32768, 32767).astype(np.int16)


def _vad(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(x) for x in rng.integers(1, 6, size=3))


def _emo_lines(rng: np.random.Generator, dialogue: SynthDialogue) -> list[str]:
    lines = [EMO_HEADER, ""]
    # F blocks first, then M, each by start time: the release's non-chronological layout.
    blocks = sorted(dialogue.utterances, key=lambda u: (u.speaker_letter != "F", u.start_s))
    empty_dom = next(u.utt_id for u in blocks if u.speaker_letter == "M") if any(
        u.speaker_letter == "M" for u in blocks) else blocks[0].utt_id
    dialogue.empty_dom_utt = empty_dom
    for u in blocks:
        ratings = [_vad(rng) for _ in u.votes]
        dom_values = [r[2] for i, r in enumerate(ratings) if not (u.utt_id == empty_dom and i == 0)]
        mean = (np.mean([r[0] for r in ratings]), np.mean([r[1] for r in ratings]), np.mean(dom_values))
        lines.append(f"[{u.start_s:.4f} - {u.end_s:.4f}]\t{u.utt_id}\t{u.code}\t"
                     f"[{mean[0]:.4f}, {mean[1]:.4f}, {mean[2]:.4f}]")
        for rater, categories in u.votes:
            comment = str(rng.choice(["", "", "curious", "tense", "amused"]))
            lines.append(f"C-{rater}:\t{'; '.join(categories)};\t({comment})")
        for i, ((rater, _), (val, act, dom)) in enumerate(zip(u.votes, ratings)):
            dom_text = "" if (u.utt_id == empty_dom and i == 0) else str(dom)
            lines.append(f"A-{rater}:\tval {val}; act {act}; dom  {dom_text};\t()")
        lines.append("")
    return lines


def _write_emo_subfolders(writer: _Writer, emo_dir: Path, dialogue: SynthDialogue) -> None:
    d = dialogue.dialog_id
    by_rater: dict[str, list[str]] = {}
    for u in dialogue.utterances:
        for rater, categories in u.votes:
            by_rater.setdefault(rater, []).append(f"{u.utt_id} :{'; '.join(categories)}; ()")
    external = sorted(r for r in by_rater if r.startswith("E"))
    writer.text(emo_dir / "Categorical" / f"{d}_{external[0].lower()}_cat.txt", by_rater[external[0]])
    writer.text(emo_dir / "Attribute" / f"{d}_{external[0].lower()}_atr.txt",
                [f"{line.split(' :')[0]} :act 3; val 3; dom 3; ()" for line in by_rater[external[0]]])
    self_lines = [f"{u.utt_id} :{'; '.join(u.votes[0][1])}; ()" for u in dialogue.utterances]
    writer.text(emo_dir / "Self-evaluation" / f"{d}_self_cat.txt", self_lines)


def _transcription_lines(rng: np.random.Generator, dialogue: SynthDialogue) -> list[str]:
    entries = [(u.start_s, f"{u.utt_id} [{u.start_s:08.4f}-{u.end_s:08.4f}]: {u.text}") for u in dialogue.utterances]
    if dialogue.out_of_order and len(entries) > 2:
        # Swap an overlapping pair when there is one (the later starter was written first).
        i = 0 if dialogue.utterances[1].start_s < dialogue.utterances[0].end_s else int(rng.integers(len(entries) - 1))
        entries[i], entries[i + 1] = entries[i + 1], entries[i]
    lines = [text for _, text in entries]
    for k in range(dialogue.xx_lines):
        letter = str(rng.choice(["F", "M"]))
        start = round(float(rng.uniform(0.0, max(dialogue.duration_s - 1.0, 0.1))), 4)
        xx = f"{dialogue.dialog_id}_{letter}XX{k} [{start:08.4f}-{start + 0.5:08.4f}]: [GARBAGE]"
        lines.insert(int(rng.integers(1, len(lines))), xx)
    for _ in range(dialogue.comment_lines):
        lines.insert(int(rng.integers(1, len(lines))), TRANSCRIPT_COMMENT)
    return lines


def _wdseg_lines(rng: np.random.Generator, u: SynthUtterance) -> list[str]:
    """Sphinx-3 layout; fills ``u.words`` with the alignment a reader must return."""
    tokens = list(u.tokens)
    if u.variant_token is not None:
        tokens[u.variant_token] = tokens[u.variant_token] + "(2)"
    if len(tokens) >= 2:
        tokens.insert(int(rng.integers(1, len(tokens))), SILENCE_FILL)
    segments = ["<s>"] + tokens + ["</s>"]
    frames = u.samples // (SAMPLE_RATE // 100)
    if frames < len(segments):
        raise ConfigError(f"{u.utt_id}: {frames} frames cannot hold {len(segments)} segments; use longer utterances")
    sizes = 1 + rng.multinomial(frames - len(segments), np.full(len(segments), 1.0 / len(segments)))
    lines = ["\t SFrm  EFrm    SegAScr Word"]
    first, total = 0, 0
    u.words = []
    for word, size in zip(segments, sizes):
        last = first + int(size) - 1
        score = -int(rng.integers(20_000, 200_000))
        total += score
        lines.append(f"\t{first:5d} {last:5d} {score:10d} {word}")
        if word not in ("<s>", "</s>", SILENCE_FILL):
            u.words.append({"word": word.removesuffix("(2)"), "start_s": first / 100, "end_s": (last + 1) / 100})
        first = last + 1
    lines.append(f" Total score: {total:11d}")
    return lines


def ds_store_bytes() -> bytes:
    """A plausible ``.DS_Store``: the Buddy-allocator magic, then padding (6148 bytes, as Finder writes)."""
    return DS_STORE_MAGIC + b"\x00\x00\x10\x00\x00\x00\x08\x00" + bytes(6148 - 16)


def appledouble_bytes() -> bytes:
    """A 4096-byte AppleDouble sidecar: magic, version, filler, two entry descriptors, padding."""
    header = APPLEDOUBLE_MAGIC + b"Mac OS X        " + (2).to_bytes(2, "big")
    entries = (9).to_bytes(4, "big") + (50).to_bytes(4, "big") + (3698).to_bytes(4, "big")
    entries += (2).to_bytes(4, "big") + (3748).to_bytes(4, "big") + (348).to_bytes(4, "big")
    body = header + entries + b"TEXTR*ch" + bytes(APPLEDOUBLE_SIZE)
    return body[:APPLEDOUBLE_SIZE]


def _write_junk(
    writer: _Writer, out: Path, release: Path, dialogues: list[SynthDialogue], config: SynthConfig
) -> list[Path]:
    """macOS junk in folders the scan lists; returns the paths (the ``__MACOSX`` folder is extra)."""
    first = dialogues[0]
    d, u = first.dialog_id, first.utterances[0].utt_id
    session_dir = release / f"Session{first.session}"
    ds_store = [release / ".DS_Store", session_dir / "dialog" / "EmoEvaluation" / ".DS_Store",
                session_dir / "sentences" / "wav" / d / ".DS_Store"]
    sidecars = [
        session_dir / "dialog" / "EmoEvaluation" / f"._{d}.txt",
        session_dir / "dialog" / "transcriptions" / f"._{d}.txt",
        session_dir / "sentences" / "wav" / d / f"._{u}.wav",
        session_dir / "sentences" / "ForcedAlignment" / d / f"._{u}.wdseg",
    ]
    if config.video:
        sidecars.append(session_dir / "dialog" / "avi" / "DivX" / f"._{d}.avi")
    for path in ds_store:
        writer.bytes_(path, ds_store_bytes())
    for path in sidecars:
        writer.bytes_(path, appledouble_bytes())
    # What unzipping an archive made on macOS leaves: a mirror tree of sidecars, Session folder included.
    mirror = out / MACOSX_DIR / RELEASE_DIR / f"Session{first.session}" / "dialog"
    for name in (f"._{d}.txt",):
        writer.bytes_(mirror / "EmoEvaluation" / name, appledouble_bytes())
        writer.bytes_(mirror / "transcriptions" / name, appledouble_bytes())
    return ds_store + sidecars
