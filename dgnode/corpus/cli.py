"""``dgnode corpus synth`` and ``dgnode corpus scan``."""

from __future__ import annotations

import argparse
import json
import time

from dgnode.corpus.labels import SCHEMES


def register(subparsers: argparse._SubParsersAction) -> None:
    corpus = subparsers.add_parser("corpus", help="generate or scan a raw IEMOCAP tree")
    commands = corpus.add_subparsers(dest="corpus_command", metavar="SUBCOMMAND", required=True)

    synth = commands.add_parser(
        "synth",
        help="write a synthetic raw IEMOCAP release (exact format, deterministic for a seed)",
        description="Write OUT/IEMOCAP_full_release/Session{n}/... in the raw IEMOCAP format. Without "
        "--structure: a mini corpus of trap dialogues. With --structure: the structure file's dialogues, "
        "speakers and labels plus realistic unlabelled utterances.",
    )
    synth.add_argument("out", metavar="OUT", help="output folder (created)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--dialogs", type=int, default=None, help="mini corpus size (default 6, at least 5)")
    synth.add_argument("--structure", metavar="JSON", default=None,
                       help="follow this structure file, e.g. dgnode/data/iemocap_structure.json")
    synth.add_argument("--video", action=argparse.BooleanOptionalAction, default=True,
                       help="write dialogue-level media (stereo wav + MPEG-4 AVI); --no-video omits it")
    synth.add_argument("--dialogue-seconds", type=float, default=None,
                       help="fill each mini dialogue with utterances up to this length (e.g. 300 for a 5-minute video)")
    synth.add_argument("--utterance-seconds", type=float, nargs=2, metavar=("MIN", "MAX"), default=None,
                       help="utterance duration range (default 1 4; 0.12 0.36 with --structure)")
    synth.add_argument("--no-junk", dest="junk", action="store_false", help="no .DS_Store / ._* / __MACOSX junk")
    synth.set_defaults(handler=run_synth)

    scan = commands.add_parser(
        "scan",
        help="scan a raw IEMOCAP tree into manifest.parquet and rejects.parquet",
        description="Find Session[1-5] folders at any depth under ROOT, parse labels, transcriptions and "
        "alignments, and write DIR/manifest.parquet (every valid utterance; label null when the scheme "
        "excludes it) and DIR/rejects.parquet (everything skipped, with the reason).",
    )
    scan.add_argument("root", metavar="ROOT")
    scan.add_argument("--out", metavar="DIR", required=True)
    scan.add_argument("--labels", choices=sorted(SCHEMES), default="merc6")
    scan.add_argument("--strict", action="store_true", help="fail on the first malformed input (file:line)")
    scan.add_argument("--json", action="store_true", help="also print the summary as JSON")
    scan.set_defaults(handler=run_scan)


def run_synth(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from dgnode.corpus.synth import SynthConfig, synthesize_corpus

    config = SynthConfig(
        seed=args.seed,
        dialogs=args.dialogs,
        structure=args.structure,
        video=args.video,
        dialogue_seconds=args.dialogue_seconds,
        utterance_seconds=tuple(args.utterance_seconds) if args.utterance_seconds else None,
        junk=args.junk,
    )
    summary = synthesize_corpus(args.out, config, progress=None)
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


def run_scan(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from dgnode.corpus.rejects import SKIP_REASONS
    from dgnode.corpus.scan import scan_corpus, write_scan

    began = time.perf_counter()
    result = scan_corpus(args.root, labels=args.labels, strict=args.strict, progress=None)
    paths = write_scan(result, args.out)
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
    if args.json:
        print(json.dumps(summary))
    return 0
