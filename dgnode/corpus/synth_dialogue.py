"""A synthetic dialogue as data: its utterances with times, raters' votes, text and words, no I/O.

:func:`make_utterances` turns a dialogue's speakers, times and codes into
:class:`SynthUtterance` objects; :func:`layout_times` lays the times out with the overlaps and
gaps of real conversation. Every random draw comes from :func:`dialogue_rng`, seeded by the
corpus seed and the dialogue id.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from dgnode.corpus.labels import CODE_TO_CATEGORY
from dgnode.corpus.synth_media import utterance_samples

if TYPE_CHECKING:
    from dgnode.corpus.synth_cues import UtteranceCue

__all__ = [
    "NOISE_TAGS",
    "SynthDialogue",
    "SynthUtterance",
    "add_noise_tag",
    "dialogue_rng",
    "layout_times",
    "make_utterances",
    "set_variant",
]

NOISE_TAGS = ("LAUGHTER", "BREATHING", "GARBAGE", "LIPSMACK")
_VOCABULARY = (
    "yes no well okay i you we they it this that what where why how know think really just maybe "
    "never always here there now then today tomorrow want need going come look tell said sorry "
    "please thank right wrong good fine great little time money home work again sure something "
    "nothing everything believe listen wait stop leave stay"
).split()
_VOTE_RATERS = ("E1", "E2", "E3", "E4", "E5", "E6")


@dataclass
class SynthUtterance:
    """One utterance as written, and what a reader of the files must find."""

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
    cue: "UtteranceCue | None" = None  # the emotion cues its media carry (None: a corpus without cues)

    @property
    def samples(self) -> int:
        return utterance_samples(self.start_s, self.end_s)


@dataclass
class SynthDialogue:
    """One dialogue: its utterances and the traps its files carry."""

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


def dialogue_rng(seed: int, dialog_id: str) -> np.random.Generator:
    # Seeded by (seed, id): a dialogue's content does not depend on which others exist.
    return np.random.default_rng([seed, zlib.crc32(dialog_id.encode())])


def layout_times(rng: np.random.Generator, speakers: list[str], durations: list[float]) -> list[float]:
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
    chosen = [str(w) for w in rng.choice(_VOCABULARY, size=count)]
    text = " ".join(chosen)
    text = text[0].upper() + text[1:] + str(rng.choice([".", "?", "!", "."]))
    return text, [w.upper() for w in chosen]


def make_utterances(
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


def add_noise_tag(rng: np.random.Generator, utterance: SynthUtterance, tag: str) -> None:
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


def set_variant(rng: np.random.Generator, utterance: SynthUtterance) -> None:
    candidates = [i for i, token in enumerate(utterance.tokens) if not token.startswith("++")]
    utterance.variant_token = int(rng.choice(candidates))
