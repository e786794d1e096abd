"""`dgnode features import|synth|info`: fill a feature store from pickles or synthesis, and inspect one."""

from __future__ import annotations

import argparse

from dgnode.errors import InputError

DEFAULT_DIMS = "text=1024,audio=1582,vision=342"


def register(subparsers: argparse._SubParsersAction) -> None:
    features = subparsers.add_parser("features", help="feature stores: import standard pickles, synthesise, inspect")
    commands = features.add_subparsers(dest="features_command", metavar="SUBCOMMAND", required=True)

    importer = commands.add_parser(
        "import",
        help="import an MMGCN/DialogueRNN or COSMIC feature pickle (read with a restricted unpickler)",
        description="Pickles are read allowing only builtin containers and numpy arrays; anything else is refused.",
    )
    importer.add_argument("file", help="the .pkl file")
    importer.add_argument("--format", required=True, choices=("mmgcn", "cosmic"), help="layout of the pickle")
    importer.add_argument("--store", required=True, help="feature store directory (created if missing)")
    importer.add_argument("--dataset", choices=("iemocap", "meld"), help="label names to use (default: inferred from the dialogue ids)")
    importer.add_argument(
        "--text-from", default="roberta1", choices=("roberta1", "roberta2", "roberta3", "roberta4", "mean"),
        help="COSMIC only: which RoBERTa vector becomes the text feature (mean = average of the four)",
    )
    importer.set_defaults(handler=_import)

    synth = commands.add_parser("synth", help="synthetic features with planted fusion and context signal over a real structure")
    synth.add_argument("--structure", required=True, help="structure JSON, e.g. dgnode/data/iemocap_structure.json")
    synth.add_argument("--store", required=True, help="feature store directory (created if missing)")
    synth.add_argument("--dims", default=DEFAULT_DIMS, help=f"modality=dim list (default {DEFAULT_DIMS})")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--noise", type=float, help="latent noise std (default 1.0): higher is harder")
    synth.add_argument("--drop", type=float, help="fraction of (utterance, modality) pairs without class signal (default 0.35)")
    synth.add_argument("--context-only", type=float, help="fraction of utterances with class signal only through context (default 0.15)")
    synth.add_argument("--mood", type=float, help="strength of the speaker-state vector (default 1.0)")
    synth.set_defaults(handler=_synth)

    info = commands.add_parser("info", help="rows, dialogues per split, dims, label counts and fingerprint of a store")
    info.add_argument("--store", required=True, help="feature store directory")
    info.set_defaults(handler=_info)


def parse_dims(text: str) -> dict[str, int]:
    """``"text=1024,audio=1582"`` -> ``{"text": 1024, "audio": 1582}``."""
    from dgnode.features.store import MODALITIES

    dims: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in MODALITIES or not value.strip().isdigit() or int(value) < 1:
            raise InputError(f"--dims item {item!r}: expected modality=dim with modality in {list(MODALITIES)} and dim >= 1")
        if name in dims:
            raise InputError(f"--dims names {name} twice")
        dims[name] = int(value)
    if not dims:
        raise InputError(f"--dims is empty; expected e.g. {DEFAULT_DIMS}")
    return dims


def _import(args: argparse.Namespace) -> int:
    from dgnode.features.pickles import import_pickle

    report = import_pickle(args.file, args.format, args.store, dataset=args.dataset, text_from=args.text_from)
    rows = [
        ("file", report.path),
        ("format / dataset", f"{report.format} / {report.dataset}"),
        ("dims", ", ".join(f"{m} {d}" for m, d in report.dims.items())),
        *((f"{split}", f"{report.dialogues[split]} dialogues, {report.utterances[split]} utterances") for split in report.dialogues),
        ("rows written", f"{report.rows_written} (rows already stored are skipped)"),
        ("valid carved from train", ", ".join(report.carved_valid) if report.carved_valid else "no (the file has a valid split)"),
        ("skipped (in no split)", f"{len(report.skipped_dialogues)}" + (f": {', '.join(report.skipped_dialogues[:10])}" if report.skipped_dialogues else "")),
        ("labels", ", ".join(f"{name} {count}" for name, count in report.label_counts.items())),
    ]
    _print_table(f"imported into {report.store}", rows)
    return 0


def _synth(args: argparse.Namespace) -> int:
    from dgnode.features.synth import SynthConfig, synthesize_features

    config = SynthConfig()
    for name in ("noise", "drop", "context_only", "mood"):
        value = getattr(args, name)
        if value is not None:
            setattr(config, name, value)
    try:
        config.validate()
    except ValueError as error:
        raise InputError(str(error)) from None
    store = synthesize_features(args.structure, args.store, parse_dims(args.dims), seed=args.seed, config=config)
    skipped = store.metadata.extra.get("skipped_dialogues", [])
    _print_summary(
        store,
        title=f"synthetic store {store.root} (seed {args.seed})",
        extra_rows=[("skipped (in no split)", f"{len(skipped)}" + (f": {', '.join(map(str, skipped[:10]))}" if skipped else ""))],
    )
    return 0


def _info(args: argparse.Namespace) -> int:
    from dgnode.features.store import FeatureStore

    _print_summary(FeatureStore.open(args.store), title=None)
    return 0


def _print_summary(store, title: str | None, extra_rows: list[tuple[str, str]] = ()) -> None:
    from dgnode.features.summary import describe_store

    summary = describe_store(store)
    rows = [
        ("store", summary.root),
        ("model / source", f"{summary.model} / {summary.source}"),
        ("created", summary.created),
        ("fingerprint", summary.fingerprint),
        ("rows", str(summary.rows)),
        ("dims", ", ".join(f"{m} {d}" for m, d in summary.dims.items())),
        *((split, f"{summary.dialogues[split]} dialogues, {summary.utterances[split]} utterances") for split in summary.dialogues),
        *((f"label {name}", " / ".join(f"{s} {n}" for s, n in per_split.items())) for name, per_split in summary.label_counts.items()),
        ("failures", str(summary.failures)),
        *extra_rows,
    ]
    _print_table(title or f"feature store {summary.root}", rows)


def _print_table(title: str, rows: list[tuple[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    Console(width=140).print(table)
