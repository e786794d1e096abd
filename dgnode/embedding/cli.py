"""``dgnode extract``: ImageBind vectors for every manifest utterance, on Ray Data.

    dgnode extract --manifest scan/manifest.parquet --store features/ \\
        --model huge --checkpoint imagebind_huge.pth [--modalities [text,audio,vision]] \\
        [--gpu_memory_gb 24] [--media.video.crop full] [--address ADDR] [--limit N]
    dgnode extract --plan [--gpu_memory_gb 24] [--dtype bfloat16] [--model huge] [--json]

Every key of :class:`dgnode.embedding.config.ExtractConfig` is a flag (``--media.audio.num_mel_bins
64``) and ``--config FILE`` reads a YAML file of them; later flags win. ``jobs/extract.py`` takes
the same options (for ``ray job submit``). ``--plan`` prints the batch plan of the memory cost
model (:mod:`dgnode.embedding.memory`) and exits: no weights, no manifest, no Ray.
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
        plan: only print the batch plan for --gpu_memory_gb and --dtype (no weights, no manifest)
    """

    engine: Literal["ray", "process"] = "ray"
    json: bool = False
    plan: bool = False


def run_extract(options: ExtractOptions, config: ExtractConfig) -> int:
    from rich.console import Console

    from dgnode.embedding.pipeline import run_extraction
    from dgnode.errors import InputError

    if options.plan:
        return print_plan(config, options.json)
    if not config.manifest or not config.store:
        raise InputError("--manifest and --store are required (or manifest/store in --config)")
    summary = run_extraction(config, engine=options.engine)
    if options.json:
        print(json.dumps(summary.as_dict(), indent=2, default=str))
    else:
        Console(file=sys.stdout).print(summary.table())
    return 0


def print_plan(config: ExtractConfig, as_json: bool) -> int:
    """The batch plan of a GPU with ``config.gpu_memory_gb`` (the CPU's with ``--device cpu``)."""
    from dgnode.embedding.memory import GB, plan_batch_sizes
    from dgnode.embedding.model import SPECS
    from dgnode.embedding.stages import model_dtype, plan_for

    on_gpu = config.device != "cpu"
    dtype = model_dtype(config, on_gpu)
    plan = plan_for(config, on_gpu, capped=False)
    math = plan_batch_sizes(SPECS[config.model], config.modalities, config.gpu_memory_gb,
                            plan.element_bytes, attention="math")
    run = {m: min(n, config.max_batch_size) for m, n in plan.sizes.items()}
    if as_json:
        print(json.dumps({"model": config.model, "dtype": dtype, **plan.as_dict(),
                          "math_attention_sizes": math.sizes, "run_sizes": run}, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"batch plan: {config.model}, {dtype}, {config.gpu_memory_gb:g} GB "
                        f"(weights {plan.weight_bytes / GB:.2f} GB, margin {plan.margin_bytes / GB:.2f} GB)")
    # "math SDPA": the batch if no fused attention kernel applies; "run": capped at --max_batch_size.
    for column in ("modality", "MB/utt", "batch", "peak GB", "math SDPA", f"run (cap {config.max_batch_size})"):
        table.add_column(column, justify="left" if column == "modality" else "right")
    for modality, size in plan.sizes.items():
        table.add_row(modality, f"{plan.item_bytes[modality] / 1e6:.1f}", str(size),
                      f"{plan.predicted_peak_bytes(modality, size) / GB:.2f}", str(math.sizes[modality]), str(run[modality]))
    Console(file=sys.stdout).print(table)
    return 0


COMMANDS = (
    Command("extract", ExtractOptions, run_extract, config=ExtractConfig,
            help="embed manifest utterances with ImageBind into a feature store (Ray Data)"),
)
