"""Benchmark of `scan_corpus` on a full-size synthetic tree (the real 151-dialogue structure).

Writes the structure corpus without dialogue-level media (10039 utterances, ~21k files), then
times, in the same run and on the same (page-cached) files:

* ``scan``: :func:`dgnode.corpus.scan.scan_corpus` (parse, join, checks, manifest frame);
* ``naive``: the I/O floor -- one ``os.walk`` over each session reading the bytes of every
  ``.txt`` and ``.wdseg`` file and listing every wav, with no parsing.

Prints JSON: counts, seconds (best of ``--repeats``), utterances per second and the ratio
scan / naive (how much the parsing and checking cost over just reading the bytes).

    python bench/bench_scan.py [--dir DIR] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dgnode.corpus.scan import scan_corpus  # noqa: E402
from dgnode.corpus.synth import SynthConfig, synthesize_corpus  # noqa: E402

STRUCTURE = REPO / "dgnode" / "data" / "iemocap_structure.json"


def naive_read(root: Path) -> tuple[int, int]:
    """Read every label, transcription and alignment file once and list the wavs: (files, bytes)."""
    files = size = 0
    for session in sorted(root.rglob("Session[1-5]")):
        if "__MACOSX" in session.parts:
            continue
        for folder, _, names in os.walk(session):
            for name in names:
                if name.endswith((".txt", ".wdseg")) and not name.startswith("."):
                    size += len(Path(folder, name).read_bytes())
                    files += 1
                elif name.endswith(".wav"):
                    files += 1
    return files, size


def best_of(repeats: int, function):
    times, result = [], None
    for _ in range(repeats):
        began = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - began)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default=None, help="where to write the tree (default: a temporary folder)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dgnode-bench-scan-", dir=args.dir))
    try:
        began = time.perf_counter()
        synth = synthesize_corpus(work, SynthConfig(seed=args.seed, structure=str(STRUCTURE), video=False))
        synth_seconds = time.perf_counter() - began
        naive_seconds, (files, size) = best_of(args.repeats, lambda: naive_read(work))
        scan_seconds, result = best_of(args.repeats, lambda: scan_corpus(work))
        summary = result.summary()
        report = {
            "benchmark": "corpus scan",
            "tree": str(work),
            "dialogues": summary["dialogues"],
            "utterances": summary["utterances"],
            "labelled_merc6": summary["labelled"],
            "files": synth.files_written,
            "mib": round(synth.bytes_written / 2**20, 1),
            "synth_seconds": round(synth_seconds, 3),
            "naive_read_seconds": round(naive_seconds, 3),
            "naive_files": files,
            "naive_mib_read": round(size / 2**20, 1),
            "scan_seconds": round(scan_seconds, 3),
            "scan_utterances_per_s": round(summary["utterances"] / scan_seconds, 1),
            "ratio_scan_vs_naive_read": round(scan_seconds / naive_seconds, 2),
            "ratio_scan_vs_synth": round(scan_seconds / synth_seconds, 3),
            "repeats": args.repeats,
            "cpus": os.cpu_count(),
        }
        print(json.dumps(report, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
