"""The IEMOCAP corpus stage: read a raw release into an utterance manifest, or synthesise one.

* :func:`scan_corpus` / :func:`write_scan` / :func:`load_manifest` (:mod:`dgnode.corpus.scan`,
  :mod:`dgnode.corpus.manifest`): raw tree -> ``manifest.parquet`` + ``rejects.parquet``;
* :func:`synthesize_corpus` / :class:`SynthConfig` (:mod:`dgnode.corpus.synth`): a synthetic
  release in the exact raw format, for tests and benchmarks;
* :func:`standard_split` (:mod:`dgnode.corpus.splits`), label schemes in :mod:`dgnode.corpus.labels`.

Names are imported lazily so that ``dgnode --help`` does not load pandas.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "scan_corpus": "dgnode.corpus.scan",
    "write_scan": "dgnode.corpus.scan",
    "ScanResult": "dgnode.corpus.scan",
    "load_manifest": "dgnode.corpus.manifest",
    "load_rejects": "dgnode.corpus.manifest",
    "synthesize_corpus": "dgnode.corpus.synth",
    "SynthConfig": "dgnode.corpus.synth",
    "SynthSummary": "dgnode.corpus.synth",
    "standard_split": "dgnode.corpus.splits",
    "get_scheme": "dgnode.corpus.labels",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'dgnode.corpus' has no attribute {name!r}")
