"""Text: noise tags out by default, ImageBind's 77-token BPE ids."""

from __future__ import annotations

import numpy as np

from dgnode.media.config import TextConfig
from dgnode.media.text import clean_transcript, tokenize

SOT, EOT = 49406, 49407


def test_noise_tags_are_removed_unless_kept():
    text = "[LAUGHTER] Excuse me. [BREATHING]  Do you [GARBAGE] have [LIPSMACK] forms?"
    assert clean_transcript(text) == "Excuse me. Do you have forms?"
    assert clean_transcript(text, keep_noise_tags=True) == "[LAUGHTER] Excuse me. [BREATHING] Do you [GARBAGE] have [LIPSMACK] forms?"
    assert clean_transcript("a [sic] b") == "a [sic] b"  # only upper-case tags are noise


def test_tokens_are_77_bpe_ids_between_start_and_end_tokens():
    tokens = tokenize(["[LAUGHTER] Excuse me. [BREATHING]", "Excuse me.", "[GARBAGE]"])
    assert tokens.shape == (3, 77) and tokens.dtype == np.int64
    assert tokens[0, :5].tolist() == [SOT, 9266, 614, 269, EOT]  # "excuse", "me", "."
    assert np.array_equal(tokens[0], tokens[1])
    assert tokens[2, :3].tolist() == [SOT, EOT, 0]
    assert not tokens[:, 5:].any()


def test_kept_tags_change_the_tokens_and_long_text_keeps_its_end_token():
    kept = tokenize(["[LAUGHTER] Excuse me."], TextConfig(keep_noise_tags=True))
    assert kept[0, :8].tolist() == [SOT, 314, 10722, 316, 9266, 614, 269, EOT]
    long = tokenize(["word " * 100])
    assert long[0, 0] == SOT and long[0, -1] == EOT and np.all(long[0, 1:-1] == long[0, 1])
