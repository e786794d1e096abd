"""``dgnode features import|synth|info``: fill a feature store from pickles or synthesis, and inspect one."""

from __future__ import annotations

from dataclasses import dataclass, field

from dgnode.command import Command
from dgnode.errors import InputError
from dgnode.features.pickle_formats import CosmicText, Dataset, PickleFormat
from dgnode.features.synth import FeatureSynthConfig

__all__ = ["COMMANDS", "ImportOptions", "InfoOptions", "SynthOptions"]

# The dims of the feature pickles the DGODE paper's numbers come from.
PAPER_DIMS = {"text": 1024, "audio": 1582, "vision": 342}


@dataclass
class ImportOptions:
    """Import an MMGCN/DialogueRNN or COSMIC feature pickle into a feature store.
    Pickles are read allowing only builtin containers and numpy arrays; anything else is refused.

    Attributes:
        file: the .pkl file
        format: layout of the pickle
        store: feature store directory or s3://bucket/prefix (created if missing)
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
        store: feature store directory or s3://bucket/prefix (created if missing)
        dims: feature width per modality, e.g. '{text: 64, vision: 16}'
        seed: random seed; a seed reproduces the store exactly
    """

    structure: str
    store: str
    dims: dict[str, int] = field(default_factory=lambda: dict(PAPER_DIMS))
    seed: int = 0

    def __post_init__(self) -> None:
        from dgnode.features.metadata import MODALITIES

        bad = {m: d for m, d in self.dims.items() if m not in MODALITIES or d < 1}
        if bad or not self.dims:
            raise ValueError(f"dims: expected modality: width with modality in {list(MODALITIES)} and width >= 1, "
                             f"got {self.dims}")


@dataclass
class InfoOptions:
    """Rows, dialogues per split, dims, label counts, duplicate rows and fingerprint of a feature store.

    Attributes:
        store: feature store directory or s3://bucket/prefix
    """

    store: str


def run_import(options: ImportOptions) -> int:
    from dgnode.features.pickles import import_pickle

    report = import_pickle(options.file, options.format, options.store, dataset=options.dataset,
                           text_from=options.text_from)
    _print(f"imported into {report.store}", report.table_rows())
    return 0


def run_synth(options: SynthOptions, config: FeatureSynthConfig) -> int:
    from dgnode.features.summary import describe_store
    from dgnode.features.synth import synthesize_features

    try:
        config.validate()
    except ValueError as error:
        raise InputError(str(error)) from None
    store = synthesize_features(options.structure, options.store, options.dims, seed=options.seed, config=config)
    skipped = store.metadata.extra.get("skipped_dialogues", [])
    _print(f"synthetic store {store.root} (seed {options.seed})", describe_store(store).table_rows()
           + [("skipped (in no split)", f"{len(skipped)}" + (f": {', '.join(map(str, skipped[:10]))}" if skipped else ""))])
    return 0


def run_info(options: InfoOptions) -> int:
    from dgnode.features.summary import describe_store

    summary = describe_store(options.store)
    _print(f"feature store {summary.root}", summary.table_rows())
    return 0


def _print(title: str, rows: list[tuple[str, str]]) -> None:
    from rich.console import Console

    from dgnode.reporting.report import key_value_table

    Console(width=140).print(key_value_table(title, rows))


COMMANDS = (
    Command("features import", ImportOptions, run_import, positional=("file",),
            help="import an MMGCN/DialogueRNN or COSMIC feature pickle (read with a restricted unpickler)"),
    Command("features synth", SynthOptions, run_synth, config=FeatureSynthConfig,
            help="synthetic features with planted fusion and context signal over a real structure"),
    Command("features info", InfoOptions, run_info,
            help="rows, dialogues per split, dims, label counts and fingerprint of a store"),
)
