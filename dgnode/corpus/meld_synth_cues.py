"""Emotion cues, moods, sentiments and casts of a synthetic MELD release.

The cues work as IEMOCAP's (:mod:`dgnode.corpus.synth_cues`: the same dropout, confusion and
jitter, drawn by :func:`~dgnode.corpus.synth_cues.draw_cue` with this module's table), over
MELD's seven emotions:

========  =====================  ======  =====  =========  =====  ==================
emotion   face disc: RGB offset  radius  pitch  loudness   glide  words
========  =====================  ======  =====  =========  =====  ==================
neutral   (-30, -30, -30)        36      x0.95  x0.8       0      calm usual
surprise  (+50, +15, +55)        46      x1.50  x2.0       +0.4   wow whoa
fear      (-20, +50, +40)        32      x1.40  x0.7       +0.3   scared afraid
sadness   (-35, -25, +50)        34      x0.80  x0.5       -0.2   sad lonely
joy       (+45, +45, -35)        40      x1.20  x1.3       +0.2   glad lovely
disgust   (-25, +45, -30)        40      x0.90  x1.6       -0.3   gross yuck
anger     (+55, -45, -35)        44      x1.30  x2.5       -0.1   furious damn
========  =====================  ======  =====  =========  =====  ==================

Neighbours (confusion): joy<->surprise, anger<->disgust, sadness<->fear, neutral->sadness.
The disc is the speaker's face in a full frame that shows every member of the dialogue's cast
(:mod:`dgnode.corpus.meld_synth_media`), so the cue is a smaller part of the picture than an
IEMOCAP half.

**Sentiment** follows the emotion as in MELD's annotation: neutral is neutral, joy positive,
sadness, fear, disgust and anger negative, surprise either (drawn, positive with probability
:data:`SURPRISE_POSITIVE`).
"""

from __future__ import annotations

import numpy as np

from dgnode.corpus.synth_cues import CueProfile

__all__ = [
    "MAIN_CAST", "MELD_CUE_TABLE", "MELD_MOODS", "MELD_NEIGHBOUR", "SURPRISE_POSITIVE", "cast_names", "sentiment_of",
]

MELD_CUE_TABLE: dict[str, CueProfile] = {
    "neutral": CueProfile((-30, -30, -30), 36, 0.95, 0.8, 0.0, ("calm", "usual")),
    "surprise": CueProfile((50, 15, 55), 46, 1.50, 2.0, 0.4, ("wow", "whoa")),
    "fear": CueProfile((-20, 50, 40), 32, 1.40, 0.7, 0.3, ("scared", "afraid")),
    "sadness": CueProfile((-35, -25, 50), 34, 0.80, 0.5, -0.2, ("sad", "lonely")),
    "joy": CueProfile((45, 45, -35), 40, 1.20, 1.3, 0.2, ("glad", "lovely")),
    "disgust": CueProfile((-25, 45, -30), 40, 0.90, 1.6, -0.3, ("gross", "yuck")),
    "anger": CueProfile((55, -45, -35), 44, 1.30, 2.5, -0.1, ("furious", "damn")),
}
MELD_NEIGHBOUR = {"joy": "surprise", "surprise": "joy", "anger": "disgust", "disgust": "anger", "sadness": "fear",
                  "fear": "sadness", "neutral": "sadness"}
# Neutral dominates MELD (47% of the utterances); every mood keeps it frequent.
MELD_MOODS: dict[str, dict[str, float]] = {
    "cheerful": {"neutral": 0.35, "joy": 0.35, "surprise": 0.20, "sadness": 0.04, "anger": 0.03, "fear": 0.02,
                 "disgust": 0.01},
    "heated": {"neutral": 0.30, "anger": 0.35, "disgust": 0.15, "surprise": 0.10, "sadness": 0.05, "joy": 0.03,
               "fear": 0.02},
    "gloomy": {"neutral": 0.35, "sadness": 0.35, "fear": 0.15, "anger": 0.05, "surprise": 0.05, "joy": 0.03,
               "disgust": 0.02},
    "calm": {"neutral": 0.60, "joy": 0.15, "surprise": 0.10, "sadness": 0.06, "anger": 0.05, "fear": 0.02,
             "disgust": 0.02},
}
SURPRISE_POSITIVE = 0.5
_SENTIMENT = {"neutral": "neutral", "joy": "positive", "sadness": "negative", "fear": "negative", "disgust": "negative",
              "anger": "negative"}
MAIN_CAST = ("Chandler", "Joey", "Monica", "Phoebe", "Rachel", "Ross")


def sentiment_of(rng: np.random.Generator, emotion: str) -> str:
    """The sentiment an emotion is annotated with (surprise: drawn, see the module docstring)."""
    if emotion == "surprise":
        return "positive" if rng.random() < SURPRISE_POSITIVE else "negative"
    return _SENTIMENT[emotion]


def cast_names(rng: np.random.Generator, count: int) -> list[str]:
    """``count`` distinct speaker names: main characters first (as in MELD, where they speak most),
    then guests (``Guest 1`` ...), in a drawn order."""
    main = min(count, int(rng.integers(max(1, count - 3), min(count, len(MAIN_CAST)) + 1)))
    names = [str(n) for n in rng.choice(MAIN_CAST, size=main, replace=False)]
    guests = [f"Guest {int(g)}" for g in rng.choice(np.arange(1, 40), size=count - main, replace=False)]
    order = rng.permutation(count)
    return [(names + guests)[i] for i in order]
