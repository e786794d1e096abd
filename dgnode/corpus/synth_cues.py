"""Emotion in the synthetic corpus: weak, noisy cues of each utterance's label in every modality,
and dialogue moods that make conversational context worth reading.

Without cues the generated media depend only on the speaker and the clock, so no model can learn
anything from them; with cues (``SynthConfig.cues``, default on) an utterance's segment carries
signs of its emotion that survive a random-init encoder (mean colour, loudness, pitch, specific
words are what a random projection keeps).

**Cue table** (the emotion of an utterance is its ``merc6`` class: the raw code, or the raters'
majority category for ``xxx``; ``sur fea dis oth`` and ``xxx`` without a majority get no cue):

=======  =====================  ======  =====  =========  =====  ================================
emotion  face disc: RGB offset  radius  pitch  loudness   glide  words
=======  =====================  ======  =====  =========  =====  ================================
hap      (+45, +45, -35)        40      x1.20  x1.3       +0.2   glad lovely
sad      (-35, -25, +50)        34      x0.80  x0.5       -0.2   sad lonely
neu      (-30, -30, -30)        36      x0.95  x0.8       0      calm usual
ang      (+55, -45, -35)        44      x1.30  x2.5       -0.1   furious damn
exc      (+50, +15, +55)        46      x1.50  x2.0       +0.4   wow amazing
fru      (-25, +45, -30)        40      x1.10  x1.6       0      annoyed ugh
=======  =====================  ======  =====  =========  =====  ================================

* **Video**: while the utterance lasts, a disc ("the face") of the half's colour plus the offset,
  centred at the speaker's face position (x=180 of the speaker's half, y=210), is drawn in the
  speaker's half (:class:`dgnode.corpus.synth_media.FaceDisc`). Small enough that the mean colour
  of a half stays within a few levels of its flat colour (the split-screen traps still hold).
* **Audio**: the speaker's voice (a tone with :data:`VOICE_HARMONICS` harmonics: a pure tone
  lights one mel band, harmonics light many) is pitched (``pitch`` x the speaker's base pitch),
  scaled (``loudness`` x the tone amplitude) and glides (``glide``: relative pitch change from the
  start to the end of the utterance) on the speaker's channel, hence in the utterance wav.
* **Text**: three emotion words (each one of the emotion's two) inserted among the neutral filler
  words of the transcript (and in the word alignment, as any other word). A random encoder
  averages its tokens: only words that recur, and always the same few, stand out of the filler.

**Noise** (per utterance and modality, independently): with probability :data:`DROPOUT` (0.3) the
modality shows no cue (no disc; the voice at pitch x1, loudness x1, no glide; no emotion word);
otherwise with probability :data:`CONFUSION` (0.1) it shows the cue of the neighbouring emotion
(:data:`NEIGHBOUR`: hap<->exc, ang<->fru, sad<->neu); and every drawn value is jittered (disc
colour +-:data:`FACE_JITTER` levels, radius +-:data:`RADIUS_JITTER` px, pitch and loudness
log-normal). One modality shows the true emotion for 63% of utterances, all three miss it for 5%:
no single modality is enough, their combination nearly is, and the conversation (below) fills in.

**Moods** (mini corpus only; a structure corpus keeps its real labels): each dialogue draws a mood
(:data:`MOODS`: cheerful, heated, gloomy, calm: a distribution over the six classes); its labels
form a chain that repeats the previous label with probability :data:`PERSISTENCE` (0.75) and
otherwise draws from the mood. Neighbouring utterances therefore share emotions, and a model that
reads the conversation can average out the noise of one utterance's cues. Moods decide labels, so
they are the same with or without cues.

Cue draws come from ``dialogue_rng(seed, dialog_id + "/cues")``: deterministic for a seed, and the
rest of a dialogue (times, speakers, labels, filler words, votes) is the same with or without
cues.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dgnode.corpus.labels import CODE_TO_CATEGORY, MERC6_LABELS

__all__ = [
    "CONFUSION",
    "CUE_TABLE",
    "DROPOUT",
    "FACE_JITTER",
    "MOODS",
    "NEIGHBOUR",
    "PERSISTENCE",
    "RADIUS_JITTER",
    "VOICE_HARMONICS",
    "CueProfile",
    "UtteranceCue",
    "cue_emotion",
    "draw_cue",
    "insert_words",
    "mood_chain",
]


@dataclass(frozen=True)
class CueProfile:
    """What one emotion looks, sounds and reads like (a row of the cue table)."""

    face: tuple[int, int, int]
    radius: int
    pitch: float
    loudness: float
    glide: float
    words: tuple[str, ...]


CUE_TABLE: dict[str, CueProfile] = {
    "hap": CueProfile((45, 45, -35), 40, 1.20, 1.3, 0.2, ("glad", "lovely")),
    "sad": CueProfile((-35, -25, 50), 34, 0.80, 0.5, -0.2, ("sad", "lonely")),
    "neu": CueProfile((-30, -30, -30), 36, 0.95, 0.8, 0.0, ("calm", "usual")),
    "ang": CueProfile((55, -45, -35), 44, 1.30, 2.5, -0.1, ("furious", "damn")),
    "exc": CueProfile((50, 15, 55), 46, 1.50, 2.0, 0.4, ("wow", "amazing")),
    "fru": CueProfile((-25, 45, -30), 40, 1.10, 1.6, 0.0, ("annoyed", "ugh")),
}
NEIGHBOUR = {"hap": "exc", "exc": "hap", "ang": "fru", "fru": "ang", "sad": "neu", "neu": "sad"}
_CATEGORY_EMOTION = {CODE_TO_CATEGORY[code]: code for code in MERC6_LABELS}

DROPOUT = {"vision": 0.3, "audio": 0.3, "text": 0.3}
CONFUSION = 0.1
FACE_JITTER = 12.0
RADIUS_JITTER = 4
_PITCH_SPREAD = 0.06  # log-normal sigma of the pitch factor
_LOUDNESS_SPREAD = 0.2  # log-normal sigma of the loudness factor
_TEXT_WORDS = 3
VOICE_HARMONICS = 20

MOODS: dict[str, dict[str, float]] = {
    "cheerful": {"hap": 0.30, "exc": 0.30, "neu": 0.20, "fru": 0.10, "sad": 0.05, "ang": 0.05},
    "heated": {"ang": 0.30, "fru": 0.30, "neu": 0.15, "exc": 0.10, "sad": 0.10, "hap": 0.05},
    "gloomy": {"sad": 0.35, "neu": 0.30, "fru": 0.20, "hap": 0.05, "ang": 0.05, "exc": 0.05},
    "calm": {"neu": 0.40, "hap": 0.20, "sad": 0.15, "fru": 0.15, "exc": 0.05, "ang": 0.05},
}
PERSISTENCE = 0.75


@dataclass
class UtteranceCue:
    """The cues one utterance carries; ``None``/empty where a modality dropped its cue, and
    nothing but the plain voice for an utterance without an emotion (``emotion=None``)."""

    emotion: str | None
    face: tuple[int, int, int] | None = None  # RGB offset of the face disc; None: no disc
    radius: int = 0
    pitch: float = 1.0
    loudness: float = 1.0
    glide: float = 0.0
    words: tuple[str, ...] = ()


def cue_emotion(code: str, majority: str | None) -> str | None:
    """The emotion an utterance's cues show: its code, or for ``xxx`` the raters' majority."""
    if code in CUE_TABLE:
        return code
    if code == "xxx" and majority is not None:
        return _CATEGORY_EMOTION.get(majority)
    return None


def draw_cue(rng: np.random.Generator, emotion: str, table: dict[str, CueProfile] | None = None,
             neighbour: dict[str, str] | None = None) -> UtteranceCue:
    """One utterance's cues of ``emotion``, with dropout, confusion and jitter (see the docstring).
    ``table``/``neighbour``: another label set's cues (MELD's, :mod:`dgnode.corpus.meld_synth_cues`)."""
    table = CUE_TABLE if table is None else table
    neighbour = NEIGHBOUR if neighbour is None else neighbour
    cue = UtteranceCue(emotion)
    shown = _shown(rng, emotion, "vision", neighbour)
    if shown is not None:
        profile = table[shown]
        jitter = rng.normal(0.0, FACE_JITTER, size=3)
        cue.face = tuple(int(round(o + j)) for o, j in zip(profile.face, jitter))
        cue.radius = int(profile.radius + rng.integers(-RADIUS_JITTER, RADIUS_JITTER + 1))
    shown = _shown(rng, emotion, "audio", neighbour)
    if shown is not None:
        profile = table[shown]
        cue.pitch = round(float(profile.pitch * np.exp(rng.normal(0.0, _PITCH_SPREAD))), 4)
        cue.loudness = round(float(profile.loudness * np.exp(rng.normal(0.0, _LOUDNESS_SPREAD))), 4)
        cue.glide = profile.glide
    shown = _shown(rng, emotion, "text", neighbour)
    if shown is not None:
        cue.words = tuple(str(rng.choice(table[shown].words)) for _ in range(_TEXT_WORDS))
    return cue


def _shown(rng: np.random.Generator, emotion: str, modality: str, neighbour: dict[str, str]) -> str | None:
    if rng.random() < DROPOUT[modality]:
        return None
    return neighbour[emotion] if rng.random() < CONFUSION else emotion


def mood_chain(rng: np.random.Generator, count: int, include: tuple[str, ...] = (),
               moods: dict[str, dict[str, float]] | None = None) -> tuple[str, list[str]]:
    """A dialogue's mood and ``count`` labels: a chain that repeats the previous label with
    probability :data:`PERSISTENCE`, else draws from the mood's distribution. Each class of
    ``include`` starts a run at a random position (so a dialogue that must hold some classes still
    has runs, rather than single labels scattered through it). ``moods``: another label set's
    (default :data:`MOODS`)."""
    if len(include) > count:
        raise ValueError(f"{count} labels cannot include {len(include)} classes")
    moods = MOODS if moods is None else moods
    mood = str(rng.choice(sorted(moods)))
    names = list(moods[mood])
    weights = np.array([moods[mood][n] for n in names])
    forced = dict(zip((int(p) for p in rng.choice(count, size=len(include), replace=False)),
                      (include[i] for i in rng.permutation(len(include)))))
    labels: list[str] = []
    for position in range(count):
        if position in forced:
            labels.append(forced[position])
        elif labels and rng.random() < PERSISTENCE:
            labels.append(labels[-1])
        else:
            labels.append(str(rng.choice(names, p=weights / weights.sum())))
    return mood, labels


def insert_words(rng: np.random.Generator, text: str, tokens: list[str],
                 words: tuple[str, ...]) -> tuple[str, list[str]]:
    """``text`` (a capitalised sentence of lower-case words ending in punctuation, as the planner
    writes it) and its aligned ``tokens`` with ``words`` inserted at random word positions."""
    if not words:
        return text, tokens
    body, stop = text[:-1].split(" "), text[-1]
    body[0] = body[0][0].lower() + body[0][1:]
    tokens = list(tokens)
    for word in words:
        position = int(rng.integers(0, len(body) + 1))
        body.insert(position, word)
        tokens.insert(position, word.upper())
    sentence = " ".join(body)
    return sentence[0].upper() + sentence[1:] + stop, tokens
