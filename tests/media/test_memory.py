"""Decoding one utterance's segment costs the same memory from a 5-minute dialogue as from a 10-second one."""

from __future__ import annotations

import statistics

import pytest

from bench.memprobe import probe  # the repository root is on sys.path (tests/conftest.py)


@pytest.mark.slow
def test_segment_decoding_memory_does_not_grow_with_the_dialogue(dialogue, dialogue_factory, tmp_path):
    five_minutes = dialogue_factory(tmp_path / "Ses01F_impro02.avi", 300.0, seed=1)
    warmup = dialogue_factory(tmp_path / "Ses01F_impro03.avi", 2.0, seed=2)
    runs = 3
    short = [probe(str(dialogue.avi), 4.0, 7.5, warmup=str(warmup.avi)) for _ in range(runs)]
    long = [probe(str(five_minutes.avi), 244.0, 247.5, warmup=str(warmup.avi)) for _ in range(runs)]
    short_peak = statistics.median(r["peak_rss_bytes"] for r in short)
    long_peak = statistics.median(r["peak_rss_bytes"] for r in long)
    assert 1 / 1.2 <= long_peak / short_peak <= 1.2, (short, long)
    # What the decode itself adds stays far below one second of decoded video (30 x 1 MB frames
    # x float copies); decoding the whole 5-minute dialogue would need about 9 GB.
    assert statistics.median(r["delta_bytes"] for r in long) < 300e6
