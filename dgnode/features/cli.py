"""``dgnode features import|synth|info``: fill a feature store from pickles or synthesis, and inspect one."""

from __future__ import annotations

from dataclasses import dataclass

from dgnode.command import Command
from dgnode.errors import InputError
from dgnode.features.pickle_formats import CosmicText, Dataset, PickleFormat
from dgnode.features.synth import SynthConfig

__all__ = ["COMMANDS", "DEFAULT_DIMS", "ImportOptions", "InfoOptions", "SynthOptions", "parse_dims"]

DEFAULT_DIMS = "text=1024,audio=1582,vision=342"


@dataclass
class ImportOptions:
    """Import an MMGCN/DialogueRNN or COSMIC feature pickle into a feature store.
    Pickles are read allowing only builtin containers and numpy arrays; anything else is refused.

    Attributes:
        file: the .pkl file
        format: layout of the pickle
        store: feature store directory (created if missing)
        dataset: label names to use (default: inferred from the dialogue ids)
        text_from: COSMIC only: which RoBERTa vector becomes the text feature (mean = average of the four)
    """

    file: str
    format: PickleFormat
    store: str
    dataset: Dataset | None = None
    text_from: CosmicText = "roberta1"


@dataclass
class SynthOptions:
    """Synthetic features with planted fusion and context signal over a real conversation structure.

    Attributes:
        structure: structure JSON, e.g. dgnode/data/iemocap_structure.json
        store: feature store directory (created if missing)
        dims: modality=dim list
        seed: random seed; a seed reproduces the store exactly
    """

    structure: str
    store: str
    dims: str = DEFAULT_DIMS
    seed: int = 0


@dataclass
class InfoOptions:
    """Rows, dialogues per split, dims, label counts, duplicate rows and fingerprint of a feature store.

    Attributes:
        store: feature store directory
    """

    store: str


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


def run_import(options: ImportOptions) -> int:
    from dgnode.features.pickles import import_pickle

    report = import_pickle(options.file, options.format, options.store, dataset=options.dataset,
                           text_from=options.text_from)
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


def run_synth(options: SynthOptions, config: SynthConfig) -> int:
    from dgnode.features.synth import synthesize_features

    try:
        config.validate()
    except ValueError as error:
        raise InputError(str(error)) from None
    store = synthesize_features(options.structure, options.store, parse_dims(options.dims), seed=options.seed,
                                config=config)
    skipped = store.metadata.extra.get("skipped_dialogues", [])
    _print_summary(
        store,
        title=f"synthetic store {store.root} (seed {options.seed})",
        extra_rows=[("skipped (in no split)", f"{len(skipped)}" + (f": {', '.join(map(str, skipped[:10]))}" if skipped else ""))],
    )
    return 0


def run_info(options: InfoOptions) -> int:
    from dgnode.features.store import FeatureStore

    _print_summary(FeatureStore.open(options.store), title=None)
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
        ("duplicate rows", str(summary.duplicates) if not summary.duplicates else
         f"{summary.duplicates} (rows repeating a stored utt_id, written without the store's lock; "
         "reading keeps the first in part-name order)"),
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


COMMANDS = (
    Command("features import", ImportOptions, run_import, positional=("file",),
            help="import an MMGCN/DialogueRNN or COSMIC feature pickle (read with a restricted unpickler)"),
    Command("features synth", SynthOptions, run_synth, config=SynthConfig,
            help="synthetic features with planted fusion and context signal over a real structure"),
    Command("features info", InfoOptions, run_info,
            help="rows, dialogues per split, dims, label counts and fingerprint of a store"),
)
