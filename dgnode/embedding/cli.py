"""``dgnode extract``: ImageBind vectors for every manifest utterance, on Ray Data.

    dgnode extract --manifest scan/manifest.parquet --store features/ \\
        --model huge --checkpoint imagebind_huge.pth [--modalities [text,audio,vision]] \\
        [--gpu_memory_gb 24] [--media.video.crop full] [--address ADDR] [--limit N]

Every key of :class:`dgnode.embedding.config.ExtractConfig` is a flag (``--media.audio.num_mel_bins
64``) and ``--config FILE`` reads a YAML file of them; later flags win. ``jobs/extract.py`` takes
the same options (for ``ray job submit``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Literal

from dgnode.command import Command
from dgnode.embedding.config import ExtractConfig

__all__ = ["COMMANDS", "ExtractOptions"]


@dataclass
class ExtractOptions:
    """Embed manifest utterances with ImageBind into a feature store (Ray Data); re-runs resume.

    Attributes:
        engine: ray, or a plain single-process loop (debugging, baselines)
        json: print the summary as JSON instead of a table
    """

    engine: Literal["ray", "process"] = "ray"
    json: bool = False


def run_extract(options: ExtractOptions, config: ExtractConfig) -> int:
    from rich.console import Console

    from dgnode.embedding.pipeline import run_extraction
    from dgnode.errors import InputError

    if not config.manifest or not config.store:
        raise InputError("--manifest and --store are required (or manifest/store in --config)")
    summary = run_extraction(config, engine=options.engine)
    if options.json:
        print(json.dumps(summary.as_dict(), indent=2, default=str))
    else:
        Console(file=sys.stdout).print(summary.table())
    return 0


COMMANDS = (
    Command("extract", ExtractOptions, run_extract, config=ExtractConfig,
            help="embed manifest utterances with ImageBind into a feature store (Ray Data)"),
)
