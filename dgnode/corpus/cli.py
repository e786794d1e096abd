"""``dgnode corpus synth OUT`` and ``dgnode corpus scan ROOT --out DIR``."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Literal

from dgnode.command import Command
from dgnode.corpus.labels import SCHEMES
from dgnode.corpus.synth_plan import SynthConfig

__all__ = ["COMMANDS", "ScanOptions", "SynthOptions"]

# The scheme names as flag choices, spelled once (in labels.SCHEMES).
LabelSchemeName = Literal[tuple(SCHEMES)]  # type: ignore[valid-type]


@dataclass
class SynthOptions:
    """Write OUT/IEMOCAP_full_release/Session{n}/... in the raw IEMOCAP format.
    Without --structure: a mini corpus of trap dialogues. With --structure: the structure file's
    dialogues, speakers and labels plus realistic unlabelled utterances.

    Attributes:
        out: output folder (created)
    """

    out: str


@dataclass
class ScanOptions:
    """Scan a raw IEMOCAP tree into OUT/manifest.parquet and OUT/rejects.parquet.
    Session[1-5] folders are found at any depth under ROOT; the manifest holds every valid utterance
    (label null when the scheme excludes it), the rejects everything skipped, with the reason.

    Attributes:
        root: the raw release (any folder above Session1..5), local or s3://BUCKET/PREFIX (AWS variables for the endpoint and credentials)
        out: folder (or s3://bucket/prefix) for manifest.parquet and rejects.parquet
        labels: label scheme
        strict: fail on the first malformed input (file:line)
        json: also print the summary as JSON
    """

    root: str
    out: str
    labels: LabelSchemeName = "merc6"
    strict: bool = False
    json: bool = False


def run_synth(options: SynthOptions, config: SynthConfig) -> int:
    from rich.console import Console
    from rich.table import Table

    from dgnode.corpus.synth import synthesize_corpus

    summary = synthesize_corpus(options.out, config, progress=None)
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


def run_scan(options: ScanOptions) -> int:
    from rich.console import Console
    from rich.table import Table

    from dgnode.corpus.manifest import scan_outputs
    from dgnode.corpus.rejects import SKIP_REASONS
    from dgnode.corpus.scan import scan_corpus, write_scan

    began = time.perf_counter()
    scan_outputs(options.out)  # an unusable output location fails before the scan
    result = scan_corpus(options.root, labels=options.labels, strict=options.strict, progress=None)
    paths = write_scan(result, options.out)
    summary = result.summary()
    summary["seconds"] = round(time.perf_counter() - began, 3)
    table = Table(title=f"corpus scan ({result.label_scheme}) -> {paths['manifest']}")
    table.add_column("what")
    table.add_column("value", justify="right")
    for key in ("sessions", "dialogues", "utterances", "labelled"):
        table.add_row(key, str(summary[key]))
    for name, count in summary["label_counts"].items():
        table.add_row(f"label {name}", str(count))
    for split, counts in summary["splits"].items():
        table.add_row(f"split {split}", f"{counts['dialogues']} dialogues, {counts['labelled']} labelled")
    table.add_row("without word alignment", str(summary["without_alignment"]))
    table.add_row("without video", str(summary["without_video"]))
    for reason, count in summary["rejects"].items():
        table.add_row(f"{'skipped' if reason in SKIP_REASONS else 'rejected'}: {reason}", str(count))
    table.add_row("seconds", f"{summary['seconds']:.2f}")
    Console().print(table)
    if options.json:
        print(json.dumps(summary))
    return 0


COMMANDS = (
    Command("corpus synth", SynthOptions, run_synth, config=SynthConfig, positional=("out",),
            help="write a synthetic raw IEMOCAP release (exact format, deterministic for a seed)"),
    Command("corpus scan", ScanOptions, run_scan, positional=("root",),
            help="scan a raw IEMOCAP tree into manifest.parquet and rejects.parquet"),
)
