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


@pytest.mark.slow
def test_an_overlong_meld_clip_costs_the_memory_of_a_three_second_one(tmp_path):
    """The whole CPU stage of extraction (frames, audio track, text) on a 5-minute clip, cut to the
    scan's bound, against a 3-second clip: the same peak within 20% (measured: within 1%)."""
    import numpy as np

    from dgnode.corpus.meld_clips import probe_clip
    from dgnode.corpus.meld_scan import utterance_span
    from dgnode.corpus.meld_synth_media import write_clip

    rng = np.random.default_rng(0)
    clips = {}
    for name, seconds in (("overlong", 300.0), ("short", 3.0), ("warmup", 1.5)):
        clips[name] = tmp_path / f"{name}.mp4"
        write_clip(clips[name], seconds, seconds, 3, 1, 180.0, None, rng)
    # As the scan reads them: the overlong clip's CSV span is as long (test dia38_utt4), so the bound cuts it.
    ends = {name: utterance_span(probe_clip(clips[name]).duration_s, seconds).end_s
            for name, seconds in (("overlong", 300.0), ("short", 3.0))}
    assert ends["overlong"] == 30.0
    runs = 3
    peaks = {name: statistics.median(probe(str(clips[name]), 0.0, ends[name], warmup=str(clips["warmup"]),
                                           utterance=True)["peak_rss_bytes"] for _ in range(runs))
             for name in ("short", "overlong")}
    assert 1 / 1.2 <= peaks["overlong"] / peaks["short"] <= 1.2, peaks
