"""What a synthetic MELD release holds, decided from a :class:`~dgnode.corpus.synth_plan.SynthConfig`
(``dataset="meld"``) with no I/O.

**Trap dialogues** (:data:`TRAP_DIALOGUES`), at the real release's ids, in both modes:

==============  ===================================================================================
train dia125    ``dia125_utt3.mp4`` corrupted (a truncated MP4)
train dia309    ``dia309_utt0.mp4`` overlong (``overlong_seconds``) though its CSV span is normal
dev dia110      no clip for ``dia110_utt7``
dev dia49       Utterance_IDs skip 4, 5; their clips exist (in no CSV row)
dev dia66       Utterance_IDs skip 9, 10; their clips exist
test dia38      ``dia38_utt4`` overlong, its CSV span as long
test dia220     ``dia220_utt0`` overlong, its CSV span as long
test dia101     ``final_videos_testdia101_utt0.mp4`` only; ``dia101_utt1`` under both names
test dia108     Utterance_IDs skip 1, 2; ``dia108_utt2.mp4`` exists
==============  ===================================================================================

**Mini release** (no ``structure``): the trap dialogues plus ``dialogs - 9`` dialogues drawn from
the standard ids (about 60/20/20 % train/dev/test counting the traps), each with
``utterances_per_dialogue`` rows (at least what its traps need) of ``utterance_seconds``, 2-4
speakers, labels from a mood chain (:mod:`dgnode.corpus.meld_synth_cues`).
**Structure release**: every dialogue of the structure file (ids by
:func:`~dgnode.corpus.meld_names.split_dialogue_of`), its speakers (indices become names) and
labels, so a scan counts exactly the real dialogues, utterances and labels.

Row traps drawn per utterance in both: text with cp1252 characters (:data:`CP1252_SHARE`),
hours written ``0:`` (:data:`ONE_DIGIT_HOUR_SHARE`), spans under 200 ms (:data:`SHORT_SPAN_SHARE`),
utterances starting before the previous one ends (:data:`OVERLAP_SHARE`), ``Sr No.`` skipping
numbers (:data:`SR_GAP_SHARE`). Every draw comes from ``dialogue_rng(seed, "meld/<split>/<D>")``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dgnode.corpus.labels import MELD7_LABELS
from dgnode.corpus.meld_names import DIALOGUE_LIMITS, MELD_SPLITS, dialog_id_of, split_dialogue_of
from dgnode.corpus.meld_synth_cues import MELD_CUE_TABLE, MELD_MOODS, MELD_NEIGHBOUR, cast_names, sentiment_of
from dgnode.corpus.synth_cues import UtteranceCue, draw_cue, mood_chain
from dgnode.corpus.synth_dialogue import dialogue_rng
from dgnode.corpus.textio import read_json
from dgnode.errors import InputError

__all__ = [
    "CP1252_SHARE", "CP1252_WORDS", "ClipTraps", "MeldSynthDialogue", "MeldSynthUtterance", "ONE_DIGIT_HOUR_SHARE",
    "OVERLAP_SHARE", "SHORT_SPAN_SHARE", "SR_GAP_SHARE", "TRAP_DIALOGUES", "plan_meld",
]

CP1252_SHARE, ONE_DIGIT_HOUR_SHARE, SHORT_SPAN_SHARE, OVERLAP_SHARE, SR_GAP_SHARE = 0.25, 0.25, 0.03, 0.08, 0.04
# Words carrying the characters the archive's CSVs hold as cp1252 bytes (\x92 \x91 \x93 \x94 \x85 \x96 \x97 \xa0).
CP1252_WORDS = ("I\u2019m", "don\u2019t", "\u2018kay", "\u201cwhat\u201d", "so\u2026", "well\u2013", "\u2014right",
                "oh\u00a0no")
_FILLER = ("yeah okay well so you know i mean just really think that this what here now right come on wait look "
           "tell me about it sure never mind").split()


@dataclass(frozen=True)
class ClipTraps:
    """A trap dialogue's clip traps, by Utterance_ID."""

    corrupt: tuple[int, ...] = ()
    missing: tuple[int, ...] = ()
    skipped_ids: tuple[int, ...] = ()  # Utterance_IDs the CSV lacks
    extra_clips: tuple[int, ...] = ()  # clips of skipped ids
    overlong_clip: tuple[int, ...] = ()  # clip overlong, CSV span normal
    overlong_span: tuple[int, ...] = ()  # clip and CSV span overlong
    prefixed: tuple[int, ...] = ()  # clip only under the final_videos_test name
    both_names: tuple[int, ...] = ()  # clip under both names


TRAP_DIALOGUES: dict[tuple[str, int], ClipTraps] = {
    ("train", 125): ClipTraps(corrupt=(3,)),
    ("train", 309): ClipTraps(overlong_clip=(0,)),
    ("dev", 110): ClipTraps(missing=(7,)),
    ("dev", 49): ClipTraps(skipped_ids=(4, 5), extra_clips=(4, 5)),
    ("dev", 66): ClipTraps(skipped_ids=(9, 10), extra_clips=(9, 10)),
    ("test", 38): ClipTraps(overlong_span=(4,)),
    ("test", 220): ClipTraps(overlong_span=(0,)),
    ("test", 101): ClipTraps(prefixed=(0,), both_names=(1,)),
    ("test", 108): ClipTraps(skipped_ids=(1, 2), extra_clips=(2,)),
}
_EXTRA_SHARES = {"train": 0.6, "dev": 0.2, "test": 0.2}


@dataclass
class MeldSynthUtterance:
    utterance: int  # Utterance_ID
    speaker: str
    emotion: str
    sentiment: str
    text: str  # as a reader must return it (Unicode; a no-break space already a space)
    written_text: str  # as written into the CSV (before the file's encoding)
    start_ms: int  # StartTime in the episode, milliseconds
    end_ms: int
    clip_s: float  # length of the clip written (overlong clips: overlong_seconds)
    one_digit_hour: bool = False
    cp1252: bool = False
    cue: UtteranceCue | None = None

    @property
    def span_s(self) -> float:
        return (self.end_ms - self.start_ms) / 1000


@dataclass
class MeldSynthDialogue:
    split: str  # MELD's split name
    dialogue: int  # Dialogue_ID
    season: int
    episode: int
    cast: list[str]  # the speakers, each drawn once in the frame
    utterances: list[MeldSynthUtterance]  # Utterance_ID order
    traps: ClipTraps = field(default_factory=ClipTraps)
    sr_gaps: list[int] = field(default_factory=list)  # numbers skipped before each row

    @property
    def dialog_id(self) -> str:
        return dialog_id_of(self.split, self.dialogue)


def plan_meld(config) -> list[MeldSynthDialogue]:
    """The dialogues of the release in split, ``Dialogue_ID`` order (see the module docstring)."""
    if config.structure is not None:
        structure = _load_structure(Path(config.structure))
        keys = sorted(structure["dialogues"], key=int)
        entries = {split_dialogue_of(k): structure["dialogues"][k] for k in keys}
        return [_plan_dialogue(config, split, d, entry["speakers"], [MELD7_LABELS[x] for x in entry["labels"]])
                for (split, d), entry in sorted(entries.items(), key=_split_order)]
    rng = np.random.default_rng(config.seed)
    chosen = set(TRAP_DIALOGUES) | set(_draw_extra(rng, (config.dialogs or len(TRAP_DIALOGUES)) - len(TRAP_DIALOGUES)))
    return [_plan_dialogue(config, split, d, None, None) for split, d in sorted(chosen, key=_split_order)]


def _split_order(item):
    key = item[0] if isinstance(item[0], tuple) else item
    return MELD_SPLITS.index(key[0]), key[1]


def _draw_extra(rng: np.random.Generator, count: int) -> list[tuple[str, int]]:
    total = count + len(TRAP_DIALOGUES)
    traps = {s: sum(1 for t in TRAP_DIALOGUES if t[0] == s) for s in MELD_SPLITS}
    wanted = {s: max(0, round(_EXTRA_SHARES[s] * total) - traps[s]) for s in ("dev", "test")}
    wanted["dev"] = min(wanted["dev"], count)
    wanted["test"] = min(wanted["test"], count - wanted["dev"])
    wanted["train"] = count - wanted["dev"] - wanted["test"]
    chosen = []
    for split in MELD_SPLITS:
        pool = [d for d in range(DIALOGUE_LIMITS[split]) if (split, d) not in TRAP_DIALOGUES and (split, d) != ("train", 60)]
        chosen += [(split, int(d)) for d in rng.choice(pool, size=min(wanted[split], len(pool)), replace=False)]
    return chosen


def _needed_rows(traps: ClipTraps) -> int:
    """Rows a trap dialogue needs: every Utterance_ID its traps name, and one past its skipped ids
    (a gap shows only before a later utterance)."""
    named = [*traps.corrupt, *traps.missing, *traps.overlong_clip, *traps.overlong_span, *traps.prefixed,
             *traps.both_names]
    last = max([*named, *(max(traps.skipped_ids) + 1 for _ in traps.skipped_ids[:1])], default=0)
    return last + 1 - len(traps.skipped_ids)


def _plan_dialogue(config, split: str, dialogue: int, speakers: list[int] | None,
                   emotions: list[str] | None) -> MeldSynthDialogue:
    rng = dialogue_rng(config.seed, f"meld/{split}/{dialogue}")
    traps = TRAP_DIALOGUES.get((split, dialogue), ClipTraps())
    if emotions is None:
        low, high = config.utterances_per_dialogue
        count = max(int(rng.integers(low, high + 1)), _needed_rows(traps))
        cast = cast_names(rng, int(rng.integers(2, 5)))
        names = [cast[0], cast[1 % len(cast)]] + [str(rng.choice(cast)) for _ in range(count - 2)]
        _, emotions = mood_chain(rng, count, moods=MELD_MOODS)
    else:
        count = len(emotions)
        cast = cast_names(rng, max(speakers) + 1)
        names = [cast[i] for i in speakers]
    ids = [i for i in range(count + len(traps.skipped_ids) + 2) if i not in traps.skipped_ids][:count]
    low_s, high_s = config.seconds_range
    clock = int(rng.integers(60_000, 1_200_000))  # where the scene starts in its episode, ms
    utterances = []
    for utterance, speaker, emotion in zip(ids, names, emotions):
        seconds = float(rng.uniform(low_s, high_s))
        if rng.random() < SHORT_SPAN_SHARE:
            seconds = float(rng.uniform(0.08, 0.19))
        length = int(round(seconds * 1000))
        overlap = utterances and rng.random() < OVERLAP_SHARE
        start = clock - int(rng.integers(100, 400)) if overlap else clock + int(rng.integers(50, 900))
        start = max(start, utterances[-1].start_ms + 1) if utterances else start
        clip_s = length / 1000
        if utterance in traps.overlong_span:
            length = int(config.overlong_seconds * 1000)
        if utterance in (*traps.overlong_span, *traps.overlong_clip):
            clip_s = float(config.overlong_seconds)
        cue, cue_rng = None, None
        if config.cues:  # from a generator of its own: the rest is the same with or without cues
            cue_rng = dialogue_rng(config.seed, f"meld/{split}/{dialogue}/{utterance}/cues")
            cue = draw_cue(cue_rng, emotion, MELD_CUE_TABLE, MELD_NEIGHBOUR)
        text, written, special = _text(rng, cue_rng, cue.words if cue else ())
        u = MeldSynthUtterance(utterance, speaker, emotion, sentiment_of(rng, emotion), text, written, start,
                               start + length, clip_s, one_digit_hour=bool(rng.random() < ONE_DIGIT_HOUR_SHARE),
                               cp1252=special, cue=cue)
        utterances.append(u)
        clock = start + length
    gaps = [int(rng.integers(1, 4)) if rng.random() < SR_GAP_SHARE else 0 for _ in utterances]
    return MeldSynthDialogue(split, dialogue, int(rng.integers(1, 10)), int(rng.integers(1, 25)), cast, utterances,
                             traps, gaps)


def _text(rng: np.random.Generator, cue_rng: np.random.Generator | None,
          cue_words: tuple[str, ...]) -> tuple[str, str, bool]:
    """A sentence as read back, as written, and whether it holds a cp1252 character; ``cue_words``
    inserted at positions drawn from ``cue_rng``."""
    words = [str(w) for w in rng.choice(_FILLER, size=int(rng.integers(2, 7)))]
    special = bool(rng.random() < CP1252_SHARE)
    if special:
        words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(CP1252_WORDS)))
    stop = str(rng.choice([".", "?", "!"]))
    for word in cue_words:
        words.insert(int(cue_rng.integers(0, len(words) + 1)), word)
    written = " ".join(words)
    written = written[0].upper() + written[1:] + stop
    return written.replace("\u00a0", " "), written, special


def _load_structure(path: Path) -> dict:
    structure = read_json(path)
    if not isinstance(structure, dict) or not isinstance(structure.get("dialogues"), dict):
        raise InputError("expected an object with 'labels' and 'dialogues' {id: {speakers, labels}}", str(path))
    if tuple(structure.get("labels", ())) != MELD7_LABELS:
        raise InputError(f"labels must be MELD's {list(MELD7_LABELS)} (is this an IEMOCAP structure file? pass "
                         "--dataset iemocap)", str(path))
    for key, entry in structure["dialogues"].items():
        try:
            split_dialogue_of(key)
        except ValueError:
            raise InputError(f"dialogues: {key!r} is not a standard MELD dialogue number (0-1432)", str(path)) from None
        speakers, labels = entry.get("speakers"), entry.get("labels")
        if not isinstance(speakers, list) or not isinstance(labels, list) or len(speakers) != len(labels) or not labels:
            raise InputError(f"dialogues.{key}: expected non-empty lists 'speakers' and 'labels' of equal length", str(path))
        if not all(isinstance(s, int) and 0 <= s < 9 for s in speakers):
            raise InputError(f"dialogues.{key}.speakers: expected speaker indices 0-8", str(path))
        if not all(isinstance(x, int) and 0 <= x < len(MELD7_LABELS) for x in labels):
            raise InputError(f"dialogues.{key}.labels: expected indices 0..{len(MELD7_LABELS) - 1}", str(path))
    return structure
