"""What a synthetic corpus holds, decided from a :class:`SynthConfig` with no I/O.

**Mini corpus** (default): the trap dialogues :data:`TRAP_DIALOGUES` (an F and an M recording,
``Ses03M_impro05a``, ``Ses05M_script01_1`` with ``Ses05M_script01_1b``) plus ``dialogs - 5`` real
dialogue ids drawn by the seed, split by split (about :data:`_EXTRA_SHARES` of the corpus in train,
valid, test, counting the trap dialogues); 8-12 utterances of 1-4 s each, labelled by a dialogue
mood (:func:`dgnode.corpus.synth_cues.mood_chain`). Across the corpus: all six MERC classes (in
the first dialogue, and across ``Ses05M_script01_1`` and ``Ses05M_script01_1b``, so the test split
has every class), ``sur fea oth dis``, an ``xxx`` whose raters' majority is Happiness (``hap`` under ``merc6``), an ``xxx`` where
Happiness ties (one rater names it twice on one line, which counts once), an ``xxx`` with another
majority.

**Cues** (``cues=True``, the default): every utterance gets its emotion cues
(:mod:`dgnode.corpus.synth_cues`): emotion words in its text now, a face disc and a voice for the
media writer (:attr:`SynthUtterance.cue`).

**Structure corpus** (``structure=...``): the dialogue ids, speaker letters and labels of the
structure file in conversation order, plus unlabelled utterances (``xxx sur fea oth dis``) so
that each session has its real utterance count (10039 in all) and the raw code counts equal the
real ones; ``round(53 / 648 * n_hap)`` of the ``hap`` utterances become ``xxx`` with a Happiness
majority, so ``raw6`` gives 7380 and ``merc6`` exactly the structure's 7433 on the real file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from dgnode.corpus.labels import CODE_TO_CATEGORY, MERC6_LABELS
from dgnode.corpus.names import DIALOG_RE, session_of_dialog
from dgnode.corpus.splits import SPLITS, known_dialogues, standard_split
from dgnode.corpus.synth_cues import UtteranceCue, cue_emotion, draw_cue, insert_words, mood_chain
from dgnode.corpus.synth_dialogue import (
    NOISE_TAGS,
    SynthDialogue,
    SynthUtterance,
    add_noise_tag,
    dialogue_rng,
    layout_times,
    make_utterances,
    set_variant,
)
from dgnode.corpus.synth_traps import apply_encoding_traps
from dgnode.corpus.textio import read_json
from dgnode.errors import InputError
from dgnode.options import ConfigError

__all__ = ["TRAP_DIALOGUES", "SynthConfig", "plan_corpus"]

TRAP_DIALOGUES = ("Ses01F_impro01", "Ses01M_impro01", "Ses03M_impro05a", "Ses05M_script01_1", "Ses05M_script01_1b")
_SPECIAL_CODES = ("sur", "fea", "oth", "dis")
# Classes a dialogue must hold besides its mood's draws: every class in the first dialogue, and
# every class across the two test-split trap dialogues (half each, so each keeps long label runs).
_REQUIRED_CLASSES = {"Ses05M_script01_1": ("hap", "sad", "neu"), "Ses05M_script01_1b": ("ang", "exc", "fru")}
_EXTRA_SHARES = {"train": 0.6, "valid": 0.2, "test": 0.2}

# Facts of the real release that a structure corpus reproduces (see shared/iemocap_format.md).
_REAL_SESSION_UTTERANCES = {1: 1819, 2: 1811, 3: 2136, 4: 2103, 5: 2170}
_REAL_SESSION_LABELLED = {1: 1373, 2: 1356, 3: 1569, 4: 1512, 5: 1623}  # merc6, per the structure file
_REAL_UNLABELLED_CODES = {"xxx": 2454, "sur": 107, "fea": 40, "oth": 3, "dis": 2}
_REAL_HAPPINESS_XXX, _REAL_HAP = 53, 648
_REAL_MISSING_ALIGNMENTS = ("Ses03F_impro07_M030", "Ses03M_impro03_M001")
_REAL_OUT_OF_ORDER_FRACTION = 67 / 151


# IEMOCAP's limits are checked first where a MELD release is asked for by the pipeline's --dataset.
_MELD_HINT = " (for an IEMOCAP release; a MELD one: --synth.dataset meld)"


@dataclass
class SynthConfig:
    """Write a synthetic raw IEMOCAP or MELD release (exact format, deterministic for a seed).

    Without ``structure``: a mini corpus of trap dialogues. With ``structure``: the structure
    file's dialogues, speakers and labels (IEMOCAP: plus realistic unlabelled utterances). MELD:
    :mod:`dgnode.corpus.meld_synth`.

    Attributes:
        dataset: the release to write: iemocap, or meld (MELD.Raw with CSVs and one MP4 per utterance)
        seed: random seed; a seed always gives the same files
        dialogs: mini corpus size (default 6, at least the 5 trap dialogues; MELD: default and least 9)
        structure: follow this structure file, e.g. dgnode/data/iemocap_structure.json (MELD: meld_structure.json)
        video: write the media (IEMOCAP: dialogue wav + MPEG-4 AVI, utterance wavs always; MELD: the clips, else CSVs only)
        dialogue_seconds: fill each mini dialogue with utterances up to this length (e.g. 300 for a 5-minute video; IEMOCAP)
        utterances_per_dialogue: utterances per mini dialogue [MIN, MAX]; MIN >= 8, since the first dialogue holds 8 required codes
        utterance_seconds: utterance duration range [MIN, MAX] (default [1, 4]; with structure [0.12, 0.36], MELD [0.3, 0.8])
        junk: write macOS junk (.DS_Store, ._* sidecars, __MACOSX)
        cues: give every utterance weak, noisy cues of its emotion in video, audio and text (see dgnode.corpus.synth_cues)
        archives: MELD: pack each split's clips into train/dev/test.tar.gz as the release ships them
        overlong_seconds: MELD: length of the overlong clips (the real ones last 4-5 minutes); above 35 s
    """

    dataset: Literal["iemocap", "meld"] = "iemocap"
    seed: int = 0
    dialogs: int | None = None
    structure: str | None = None
    video: bool = True
    dialogue_seconds: float | None = None
    utterances_per_dialogue: tuple[int, int] = (8, 12)
    utterance_seconds: tuple[float, float] | None = None
    junk: bool = True
    cues: bool = True
    archives: bool = False
    overlong_seconds: float = 40.0

    def __post_init__(self) -> None:
        if self.dataset == "meld":
            self._check_meld()
            return
        if self.archives:
            raise ConfigError("archives: only for a MELD release (--dataset meld)")
        if self.structure is not None and self.dialogs is not None:
            raise ConfigError("dialogs: a structure corpus has the structure's dialogues; leave dialogs unset")
        if self.structure is not None and self.dialogue_seconds is not None:
            raise ConfigError("dialogue_seconds: only for the mini corpus; a structure corpus has its own lengths")
        if self.structure is None:
            count = 6 if self.dialogs is None else self.dialogs
            if not len(TRAP_DIALOGUES) <= count <= len(known_dialogues()):
                raise ConfigError(f"dialogs: expected {len(TRAP_DIALOGUES)}..{len(known_dialogues())} "
                                  f"(the trap dialogues always exist), got {count}{_MELD_HINT}")
        low, high = self.utterances_per_dialogue
        if not 8 <= low <= high:
            raise ConfigError(f"utterances_per_dialogue: expected 8 <= min <= max, got {self.utterances_per_dialogue}"
                              f"{_MELD_HINT}")
        if self.utterance_seconds is not None:
            low_s, high_s = self.utterance_seconds
            if not 0.1 <= low_s <= high_s:
                raise ConfigError(f"utterance_seconds: expected 0.1 <= min <= max, got {self.utterance_seconds}")
        if self.dialogue_seconds is not None and self.dialogue_seconds < 30:
            raise ConfigError(f"dialogue_seconds: expected at least 30 s, got {self.dialogue_seconds}")

    def _check_meld(self) -> None:
        from dgnode.corpus.meld_names import DIALOGUE_LIMITS
        from dgnode.corpus.meld_scan import MAX_UTTERANCE_S, OVERLONG_MARGIN_S
        from dgnode.corpus.meld_synth_plan import TRAP_DIALOGUES

        if self.dataset not in ("iemocap", "meld"):
            raise ConfigError(f"dataset: expected iemocap or meld, got {self.dataset!r}")
        if self.structure is not None and self.dialogs is not None:
            raise ConfigError("dialogs: a structure corpus has the structure's dialogues; leave dialogs unset")
        if self.dialogue_seconds is not None:
            raise ConfigError("dialogue_seconds: only for IEMOCAP; a MELD clip holds one utterance")
        most = sum(DIALOGUE_LIMITS.values()) - 1  # train has no dialogue 60
        if self.dialogs is not None and not len(TRAP_DIALOGUES) <= self.dialogs <= most:
            raise ConfigError(f"dialogs: expected {len(TRAP_DIALOGUES)}..{most} (the trap dialogues always exist), "
                              f"got {self.dialogs}")
        low, high = self.utterances_per_dialogue
        if not 1 <= low <= high:
            raise ConfigError(f"utterances_per_dialogue: expected 1 <= min <= max, got {self.utterances_per_dialogue}")
        if self.utterance_seconds is not None:
            low_s, high_s = self.utterance_seconds
            if not 0.1 <= low_s <= high_s <= MAX_UTTERANCE_S:
                raise ConfigError(f"utterance_seconds: expected 0.1 <= min <= max <= {MAX_UTTERANCE_S:g}, got "
                                  f"{self.utterance_seconds}")
        if not self.overlong_seconds > MAX_UTTERANCE_S + OVERLONG_MARGIN_S:
            raise ConfigError(f"overlong_seconds: expected more than {MAX_UTTERANCE_S + OVERLONG_MARGIN_S:g} s (the "
                              f"scan's bound plus margin), got {self.overlong_seconds}")

    @property
    def seconds_range(self) -> tuple[float, float]:
        if self.utterance_seconds is not None:
            return tuple(self.utterance_seconds)
        if not self.structure:
            return (1.0, 4.0)
        # Short clips keep a structure corpus quick to write; MELD's stay above its 200 ms trap.
        return (0.3, 0.8) if self.dataset == "meld" else (0.12, 0.36)


def plan_corpus(config: SynthConfig) -> list[SynthDialogue]:
    """The dialogues of the corpus, sorted by id, with utterances in conversation order (IEMOCAP;
    MELD's plan is :func:`dgnode.corpus.meld_synth_plan.plan_meld`)."""
    if config.dataset != "iemocap":
        raise ValueError(f"plan_corpus plans IEMOCAP releases, not {config.dataset}")
    if config.structure is not None:
        return _plan_structure(config)
    rng = np.random.default_rng(config.seed)
    count = 6 if config.dialogs is None else config.dialogs
    extra = _draw_extra_dialogues(rng, count - len(TRAP_DIALOGUES))
    dialogues = []
    for index, dialog_id in enumerate(sorted(list(TRAP_DIALOGUES) + extra)):
        dialogues.append(_plan_mini_dialogue(dialog_id, index, config))
    return dialogues


def _draw_extra_dialogues(rng: np.random.Generator, count: int) -> list[str]:
    """``count`` real dialogue ids besides the trap ones, about :data:`_EXTRA_SHARES` per split
    once the trap dialogues are counted (train takes what the others leave)."""
    def split_of(dialog_id: str) -> str:
        return standard_split(dialog_id, session_of_dialog(dialog_id))

    total = count + len(TRAP_DIALOGUES)
    traps = Counter(split_of(d) for d in TRAP_DIALOGUES)
    wanted = {s: max(0, round(_EXTRA_SHARES[s] * total) - traps[s]) for s in ("valid", "test")}
    wanted["valid"] = min(wanted["valid"], count)
    wanted["test"] = min(wanted["test"], count - wanted["valid"])
    wanted["train"] = count - wanted["valid"] - wanted["test"]
    pools = {s: sorted(d for d in known_dialogues() - set(TRAP_DIALOGUES) if split_of(d) == s) for s in SPLITS}
    chosen: list[str] = []
    for split in SPLITS:
        take = min(wanted[split], len(pools[split]))
        chosen += [str(d) for d in rng.choice(pools[split], size=take, replace=False)]
    rest = sorted(set().union(*pools.values()) - set(chosen))  # a split ran out: fill from the others
    chosen += [str(d) for d in rng.choice(rest, size=count - len(chosen), replace=False)]
    return chosen


def _plan_mini_dialogue(dialog_id: str, index: int, config: SynthConfig) -> SynthDialogue:
    rng = dialogue_rng(config.seed, dialog_id)
    xxx_variant = ("happiness", "tie", "other")[index] if index < 3 else str(rng.choice(["happiness", "tie", "other"]))
    required = [("xxx", xxx_variant)]  # unlabelled (or hap) codes, placed anywhere
    if index < len(_SPECIAL_CODES):
        required.append((_SPECIAL_CODES[index], None))
    classes = MERC6_LABELS if index == 0 else _REQUIRED_CLASSES.get(dialog_id, ())
    needed = len(required) + len(classes)
    low, high = config.seconds_range
    if config.dialogue_seconds is None:
        count = max(int(rng.integers(config.utterances_per_dialogue[0], config.utterances_per_dialogue[1] + 1)),
                    needed)
        durations = [round(float(rng.uniform(low, high)), 4) for _ in range(count)]
    else:
        durations = []
        while sum(durations) < config.dialogue_seconds:  # then keep those that end in time
            durations.append(round(float(rng.uniform(low, high)), 4))
        count = len(durations)
    first = str(rng.choice(["F", "M"]))
    speakers = [first, "M" if first == "F" else "F"] + [str(rng.choice(["F", "M"])) for _ in range(count - 2)]
    starts = layout_times(rng, speakers, durations)
    if config.dialogue_seconds is not None:
        count = sum(1 for start, length in zip(starts, durations) if start + length <= config.dialogue_seconds - 0.5)
        durations, speakers, starts = durations[:count], speakers[:count], starts[:count]
        if count < needed:
            raise ConfigError(f"dialogue_seconds: {config.dialogue_seconds} s holds {count} utterances of "
                              f"{low}-{high} s; {dialog_id} needs at least {needed}")
    _, chain = mood_chain(rng, count - len(required), include=classes)
    codes: list[tuple[str, str | None]] = [(code, None) for code in chain]
    for position, code in zip(sorted(int(p) for p in rng.choice(count, size=len(required), replace=False)),
                              [required[i] for i in rng.permutation(len(required))]):
        codes.insert(position, code)
    utterances = make_utterances(rng, dialog_id, speakers, starts, durations, codes, words=(2, 7))
    if config.cues:
        _add_cues(config.seed, dialog_id, utterances)
    noisy = int(rng.integers(count))
    add_noise_tag(rng, utterances[noisy], "LAUGHTER" if index == 0 else str(rng.choice(NOISE_TAGS)))
    utterances[-1 if noisy != count - 1 else 0].has_wdseg = False  # never the one with the filler
    variant_candidates = [u for u in utterances if u.has_wdseg and any(not t.startswith("++") for t in u.tokens)]
    set_variant(rng, variant_candidates[0])
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
    apply_encoding_traps(dialogue)
    return dialogue


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
    happy_xxx_count = round(_REAL_HAPPINESS_XXX / _REAL_HAP * len(hap_positions))
    happy_xxx = {hap_positions[i] for i in rng.choice(len(hap_positions), size=happy_xxx_count, replace=False)}
    # Unlabelled extras: the real per-session utterance counts and raw code counts when the
    # structure is the real one, the real proportions otherwise.
    real = dict(labelled_per_session) == _REAL_SESSION_LABELLED
    if real:
        extras_per_session = {s: _REAL_SESSION_UTTERANCES[s] - labelled_per_session[s] for s in labelled_per_session}
        pool = [code for code, n in _REAL_UNLABELLED_CODES.items() for _ in range(n)]
        pool = [pool[i] for i in rng.permutation(len(pool))]
    else:
        total_real = sum(_REAL_SESSION_UTTERANCES.values())
        ratio = (total_real - sum(_REAL_SESSION_LABELLED.values())) / sum(_REAL_SESSION_LABELLED.values())
        extras_per_session = {s: round(n * ratio) for s, n in labelled_per_session.items()}
        codes, counts = zip(*_REAL_UNLABELLED_CODES.items())
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
    rng = dialogue_rng(config.seed, dialog_id)
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
    starts = layout_times(rng, speaker_letters, durations)
    utterances = make_utterances(rng, dialog_id, speaker_letters, starts, durations, [c for _, c in sequence],
                                  words=(1, 3))
    if config.cues:
        _add_cues(config.seed, dialog_id, utterances)
    for utterance in utterances:
        if rng.random() < 0.05:
            add_noise_tag(rng, utterance, str(rng.choice(NOISE_TAGS)))
        if rng.random() < 0.03 and any(not t.startswith("++") for t in utterance.tokens):
            set_variant(rng, utterance)
        utterance.has_wdseg = utterance.utt_id not in _REAL_MISSING_ALIGNMENTS
    last_end = max(u.end_s for u in utterances)
    dialogue = SynthDialogue(
        dialog_id=dialog_id,
        session=session_of_dialog(dialog_id),
        mocap_letter=DIALOG_RE.match(dialog_id).group(2),
        utterances=utterances,
        duration_s=round(last_end + float(rng.uniform(0.5, 1.0)), 4),
        xx_lines=int(rng.random() < 0.3),
        comment_lines=int(rng.random() < 0.1),
        out_of_order=bool(rng.random() < _REAL_OUT_OF_ORDER_FRACTION),
    )
    apply_encoding_traps(dialogue)
    return dialogue


def _add_cues(seed: int, dialog_id: str, utterances: list[SynthUtterance]) -> None:
    """Each utterance's cues (:mod:`dgnode.corpus.synth_cues`), from a generator of their own so
    that everything else a dialogue holds is the same with or without cues."""
    rng = dialogue_rng(seed, dialog_id + "/cues")
    for utterance in utterances:
        emotion = cue_emotion(utterance.code, utterance.majority)
        utterance.cue = draw_cue(rng, emotion) if emotion else UtteranceCue(None)
        utterance.text, utterance.tokens = insert_words(rng, utterance.text, utterance.tokens, utterance.cue.words)


def _load_structure(path: Path) -> dict:
    structure = read_json(path)
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
