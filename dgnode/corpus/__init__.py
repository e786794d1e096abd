"""The corpus stage: read a raw IEMOCAP or MELD release into an utterance manifest, or synthesise one.

* :func:`scan_release` / :func:`detect_dataset` (:mod:`dgnode.corpus.detect`): either release,
  told apart by its files;
* :func:`scan_corpus` / :func:`write_scan` / :func:`load_manifest` (:mod:`dgnode.corpus.scan`,
  :mod:`dgnode.corpus.manifest`): raw IEMOCAP tree -> ``manifest.parquet`` + ``rejects.parquet``;
* :func:`scan_meld` (:mod:`dgnode.corpus.meld_scan`, with ``meld_names``, ``meld_csv``,
  ``meld_layout``, ``meld_clips``): a raw MELD release into the same contract;
* :func:`synthesize_meld` (:mod:`dgnode.corpus.meld_synth`, planned in ``meld_synth_plan``): a
  synthetic MELD release (``SynthConfig(dataset="meld")``);
* :func:`synthesize_corpus` / :class:`SynthConfig` (:mod:`dgnode.corpus.synth`, planned in
  :mod:`dgnode.corpus.synth_plan`): a synthetic release in the exact raw format, for tests and
  benchmarks;
* :func:`standard_split` and :data:`SPLITS` (:mod:`dgnode.corpus.splits`), label schemes in
  :mod:`dgnode.corpus.labels`.

Names are imported lazily so that ``dgnode --help`` does not load pandas.
"""

from __future__ import annotations

from dgnode.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "dgnode.corpus.scan": ("scan_corpus", "write_scan", "ScanResult"),
    "dgnode.corpus.detect": ("detect_dataset", "scan_release"),
    "dgnode.corpus.meld_scan": ("scan_meld",),
    "dgnode.corpus.meld_synth": ("synthesize_meld", "MeldSynthSummary"),
    "dgnode.corpus.manifest": ("load_manifest", "load_rejects"),
    "dgnode.corpus.synth": ("synthesize_corpus", "SynthSummary"),
    "dgnode.corpus.synth_plan": ("SynthConfig", "plan_corpus"),
    "dgnode.corpus.splits": ("SPLITS", "standard_split"),
    "dgnode.corpus.labels": ("get_scheme",),
})
