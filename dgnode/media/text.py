"""Transcript -> ImageBind's text input: 77 BPE token ids (``SimpleTokenizer``, CLIP's vocabulary).

IEMOCAP transcripts carry non-speech tags such as ``[LAUGHTER]``, ``[BREATHING]``,
``[GARBAGE]`` and ``[LIPSMACK]``. They are removed by default (ImageBind's text encoder never
saw them; ``keep_noise_tags=True`` keeps the text verbatim).
"""

from __future__ import annotations

import functools
import re

import numpy as np
from dgnode.media.config import TextConfig

__all__ = ["NOISE_TAG", "clean_transcript", "tokenize"]

# Upper-case bracketed tags only: ordinary brackets in speech ("[sic]") are left alone.
NOISE_TAG = re.compile(r"\[[A-Z][A-Z_ ]*\]")
_SPACES = re.compile(r"\s+")


def clean_transcript(text: str, keep_noise_tags: bool = False) -> str:
    """Drop noise tags (unless kept) and collapse whitespace."""
    if not keep_noise_tags:
        text = NOISE_TAG.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


@functools.lru_cache(maxsize=4)
def _tokenizer(context_length: int):
    from dgnode.compat import imagebind_bpe_path, import_imagebind_models

    import_imagebind_models()
    from imagebind.models.multimodal_preprocessors import SimpleTokenizer

    # Loading the 49k BPE merges takes about a second: one tokenizer per process.
    return SimpleTokenizer(bpe_path=imagebind_bpe_path(), context_length=context_length)


def tokenize(texts: list[str], config: TextConfig | None = None) -> np.ndarray:
    """``(len(texts), context_length)`` int64 token ids: start token, BPE ids, end token, zeros.

    Longer texts are cut so the end token stays (as ImageBind's tokenizer does).
    """
    config = config or TextConfig()
    tokenizer = _tokenizer(config.context_length)
    rows = np.zeros((len(texts), config.context_length), dtype=np.int64)
    for i, text in enumerate(texts):
        rows[i] = tokenizer(clean_transcript(text, config.keep_noise_tags)).numpy().reshape(-1)
    return rows
