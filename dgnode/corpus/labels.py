"""Label schemes: from a raw 3-letter consensus code (and the raters' votes) to a class index.

Raw codes: ``neu hap sad ang exc fru sur fea dis oth xxx`` (``xxx``: the raters did not agree).

=========  ==================================  ================================================
scheme     classes (index order)               rule
=========  ==================================  ================================================
``merc6``  hap, sad, neu, ang, exc, fru        raw code, plus: an ``xxx`` utterance whose raters'
                                               majority category is Happiness counts as ``hap``
``raw6``   hap, sad, neu, ang, exc, fru        raw code only
``four``   hap, sad, neu, ang                  raw code only; ``exc`` is merged into ``hap``
=========  ==================================  ================================================

MELD schemes (``dataset == "meld"``) read one column of the release's CSVs, so the manifest's
``label_code`` is that column's raw value:

==============  ==================================================  ==========================
scheme          classes (index order)                               CSV column
==============  ==================================================  ==========================
``meld7``       neutral, surprise, fear, sadness, joy, disgust,     ``Emotion``
                anger (the order of the MMGCN/COSMIC pickles and
                ``dgnode/data/meld_structure.json``)
``sentiment3``  neutral, positive, negative                         ``Sentiment``
==============  ==================================================  ==========================

Every other code gives ``None`` (the utterance stays in the manifest with a null label).
``merc6`` is the split used by the MERC literature (DialogueRNN, MMGCN, M3Net, DGODE): on the
real corpus ``raw6`` has 7380 labelled utterances and ``merc6`` 7433 (53 ``xxx`` utterances with
a Happiness majority); ``four`` has 5531.

**Majority vote.** Each ``C-`` line is one rater. A rater votes once for every distinct category
named on their line (``Happiness; Happiness;`` is one vote). The majority category is the one
named by strictly more raters than any other; a tie for the top has no majority. Actors'
self-evaluations (``C-F1``, ``C-M1``) count like any other rater.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Literal, Mapping

from dgnode.errors import DgnodeError

__all__ = [
    "CODE_TO_CATEGORY", "DEFAULT_SCHEMES", "EMOTION_CODES", "HAPPINESS", "LabelScheme", "LabelSchemeName", "MELD7_LABELS", "MERC6_LABELS",
    "SCHEMES", "SENTIMENT3_LABELS", "get_scheme", "majority_category", "scheme_for",
]

EMOTION_CODES = ("neu", "hap", "sad", "ang", "exc", "fru", "sur", "fea", "dis", "oth", "xxx")
CODE_TO_CATEGORY = {
    "neu": "Neutral",
    "hap": "Happiness",
    "sad": "Sadness",
    "ang": "Anger",
    "exc": "Excited",
    "fru": "Frustration",
    "sur": "Surprise",
    "fea": "Fear",
    "dis": "Disgust",
    "oth": "Other",
}
MERC6_LABELS = ("hap", "sad", "neu", "ang", "exc", "fru")
MELD7_LABELS = ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")
SENTIMENT3_LABELS = ("neutral", "positive", "negative")
HAPPINESS = "Happiness"


@dataclass(frozen=True)
class LabelScheme:
    """How raw codes map to class indices; ``label_names[i]`` names class ``i``."""

    name: str
    label_names: tuple[str, ...]
    code_to_label: Mapping[str, int] = field(hash=False)
    xxx_happiness_as: int | None = None  # class of ``xxx`` with a Happiness majority
    dataset: str = "iemocap"  # the release whose codes the scheme reads
    column: str = ""  # MELD: the CSV column holding the codes (Emotion or Sentiment)

    def label_of(self, code: str, majority: str | None = None) -> int | None:
        """Class index of an utterance with raw ``code`` and raters' ``majority`` category."""
        if code == "xxx" and self.xxx_happiness_as is not None and majority == HAPPINESS:
            return self.xxx_happiness_as
        return self.code_to_label.get(code)


def _six_class(name: str, xxx_happiness: bool) -> LabelScheme:
    mapping = {code: index for index, code in enumerate(MERC6_LABELS)}
    return LabelScheme(name, MERC6_LABELS, mapping, mapping["hap"] if xxx_happiness else None)


SCHEMES: dict[str, LabelScheme] = {
    "merc6": _six_class("merc6", xxx_happiness=True),
    "raw6": _six_class("raw6", xxx_happiness=False),
    "four": LabelScheme("four", ("hap", "sad", "neu", "ang"), {"hap": 0, "exc": 0, "sad": 1, "neu": 2, "ang": 3}),
    "meld7": LabelScheme("meld7", MELD7_LABELS, {n: i for i, n in enumerate(MELD7_LABELS)}, dataset="meld",
                         column="Emotion"),
    "sentiment3": LabelScheme("sentiment3", SENTIMENT3_LABELS, {n: i for i, n in enumerate(SENTIMENT3_LABELS)},
                              dataset="meld", column="Sentiment"),
}
# The scheme a scan uses when none is named.
DEFAULT_SCHEMES = {"iemocap": "merc6", "meld": "meld7"}
# The scheme names as option choices, spelled once (the keys of SCHEMES).
LabelSchemeName = Literal[tuple(SCHEMES)]  # type: ignore[valid-type]


def get_scheme(name: str) -> LabelScheme:
    try:
        return SCHEMES[name]
    except KeyError:
        raise DgnodeError(f"unknown label scheme {name!r}; expected one of {', '.join(SCHEMES)}") from None


def scheme_for(dataset: str, name: str | None) -> LabelScheme:
    """Scheme ``name`` (the dataset's default when ``None``), refused when it reads another
    dataset's codes (``meld7`` on IEMOCAP would label nothing)."""
    scheme = get_scheme(DEFAULT_SCHEMES[dataset] if name is None else name)
    if scheme.dataset != dataset:
        fitting = ", ".join(n for n, s in SCHEMES.items() if s.dataset == dataset)
        raise DgnodeError(f"label scheme {scheme.name!r} is for {scheme.dataset}, not {dataset}; use one of {fitting}")
    return scheme


def majority_category(rater_categories: Iterable[Iterable[str]]) -> str | None:
    """The category named by strictly more raters than any other, or ``None`` on a tie.

    ``rater_categories`` holds one iterable of category names per rater (``C-`` line).
    """
    votes: dict[str, int] = {}
    for categories in rater_categories:
        for category in set(categories):
            votes[category] = votes.get(category, 0) + 1
    if not votes:
        return None
    top = max(votes.values())
    leaders = [category for category, count in votes.items() if count == top]
    return leaders[0] if len(leaders) == 1 else None
