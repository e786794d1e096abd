"""``dgnode corpus synth OUT [--dataset meld]`` and ``dgnode corpus scan ROOT --out DIR [--dataset meld]``."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from typing import Literal

from dgnode.command import Command
from dgnode.corpus.labels import LabelSchemeName
from dgnode.corpus.meld_names import MAX_UTTERANCE_S
from dgnode.corpus.synth_plan import SynthConfig

__all__ = ["COMMANDS", "ScanOptions", "SynthOptions"]


@dataclass
class SynthOptions:
    """Write OUT/IEMOCAP_full_release/Session{n}/... in the raw IEMOCAP format, or with --dataset meld
    OUT/MELD.Raw/ (CSVs, one MP4 per utterance). Without --structure: a mini corpus of trap
    dialogues. With --structure: the structure file's dialogues, speakers and labels.

    Attributes:
        out: output folder (created)
    """

    out: str


@dataclass
class ScanOptions:
    """Scan a raw IEMOCAP or MELD release into OUT/manifest.parquet and OUT/rejects.parquet.
    IEMOCAP: Session[1-5] folders at any depth under ROOT. MELD: the *_sent_emo.csv files and the
    clip folders or train/dev/test.tar.gz archives at any depth. The manifest holds every valid
    utterance (label null when the scheme excludes it), the rejects everything skipped, with the reason.

    Attributes:
        root: the raw release (any folder above Session1..5, or MELD.Raw); an IEMOCAP release may be s3://BUCKET/PREFIX (AWS variables for the endpoint and credentials)
        out: folder (or s3://bucket/prefix) for manifest.parquet and rejects.parquet
        dataset: iemocap, meld, or auto (told by the folder's contents)
        labels: label scheme (default: merc6 for IEMOCAP, meld7 for MELD; sentiment3 reads MELD's Sentiment)
        strict: fail on the first malformed input or trap (file:line)
        unpack_dir: MELD: local folder where clip archives are unpacked (default OUT/unpacked, or a temporary folder when OUT is in S3; reused by later scans)
        max_utterance_s: MELD: no utterance is read longer than this (overlong clips are cut)
        json: also print the summary as JSON
    """

    root: str
    out: str
    dataset: Literal["auto", "iemocap", "meld"] = "auto"
    labels: LabelSchemeName | None = None
    strict: bool = False
    unpack_dir: str | None = None
    max_utterance_s: float = MAX_UTTERANCE_S
    json: bool = False


def run_synth(options: SynthOptions, config: SynthConfig) -> int:
    from rich.console import Console
    from rich.table import Table

    from dgnode.corpus.synth import synthesize_corpus

    summary = synthesize_corpus(options.out, config, progress=None)
    if config.dataset == "meld":
        return _print_meld_synth(summary)
    table = Table(title=f"synthetic IEMOCAP at {summary.release_dir}")
    table.add_column("what")
    table.add_column("value", justify="right")
    utterances = sum(len(d.utterances) for d in summary.dialogues)
    table.add_row("dialogues", str(len(summary.dialogues)))
    table.add_row("utterances", str(utterances))
    for name, count in summary.label_counts("merc6").items():
        table.add_row(f"merc6 {name}", str(count))
    table.add_row("raw codes", " ".join(f"{c}:{n}" for c, n in summary.code_counts().items()))
    table.add_row("videos", str(len(summary.dialogues) if summary.video else 0))
    table.add_row("files", str(summary.files_written))
    table.add_row("MiB", f"{summary.bytes_written / 2**20:.1f}")
    table.add_row("seconds", f"{summary.seconds:.2f}")
    Console(stderr=False).print(table)
    return 0


def _print_meld_synth(summary) -> int:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"synthetic MELD at {summary.release_dir}")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("dialogues", str(len(summary.dialogues)))
    table.add_row("utterances", str(sum(len(d.utterances) for d in summary.dialogues)))
    for name, count in summary.label_counts("meld7").items():
        table.add_row(f"meld7 {name}", str(count))
    table.add_row("clips", f"{len(summary.clip_seconds)} readable" + (" (in .tar.gz archives)" if summary.archives else ""))
    table.add_row("files", str(summary.files_written))
    table.add_row("MiB", f"{summary.bytes_written / 2**20:.1f}")
    table.add_row("seconds", f"{summary.seconds:.2f}")
    Console(stderr=False).print(table)
    return 0


def run_scan(options: ScanOptions) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from dgnode.corpus.detect import scan_release
    from dgnode.corpus.manifest import scan_outputs
    from dgnode.corpus.rejects import KEPT_REASONS, SKIP_REASONS
    from dgnode.corpus.scan import write_scan

    began = time.perf_counter()
    scan_outputs(options.out)  # an unusable output location fails before the scan
    unpack_dir = options.unpack_dir or (
        str(Path(tempfile.gettempdir()) / "dgnode-meld-unpacked") if options.out.startswith("s3://")
        else str(Path(options.out) / "unpacked"))
    result = scan_release(options.root, options.dataset, options.labels, options.strict, None, unpack_dir,
                          options.max_utterance_s)
    paths = write_scan(result, options.out)
    summary = result.summary()
    summary["seconds"] = round(time.perf_counter() - began, 3)
    table = Table(title=f"corpus scan ({result.dataset}, {result.label_scheme}) -> {paths['manifest']}")
    table.add_column("what")
    table.add_column("value", justify="right")
    for key in ("sessions", "seasons", "speakers", "dialogues", "utterances", "labelled"):
        if key in summary:
            table.add_row(key, str(summary[key]))
    for name, count in summary["label_counts"].items():
        table.add_row(f"label {name}", str(count))
    for split, counts in summary["splits"].items():
        table.add_row(f"split {split}", f"{counts['dialogues']} dialogues, {counts['labelled']} labelled")
    if "without_alignment" in summary:
        table.add_row("without word alignment", str(summary["without_alignment"]))
    table.add_row("without video", str(summary["without_video"]))
    for reason, count in summary["rejects"].items():
        kind = "skipped" if reason in SKIP_REASONS else "kept" if reason in KEPT_REASONS else "rejected"
        table.add_row(f"{kind}: {reason}", str(count))
    table.add_row("seconds", f"{summary['seconds']:.2f}")
    Console().print(table)
    if options.json:
        print(json.dumps(summary))
    return 0


COMMANDS = (
    Command("corpus synth", SynthOptions, run_synth, config=SynthConfig, positional=("out",),
            help="write a synthetic raw IEMOCAP or MELD release (exact format, deterministic for a seed)"),
    Command("corpus scan", ScanOptions, run_scan, positional=("root",),
            help="scan a raw IEMOCAP or MELD release into manifest.parquet and rejects.parquet"),
)
