"""``dgnode extract``: ImageBind vectors for every manifest utterance, on Ray Data.

    dgnode extract --manifest scan/manifest.parquet --store features/ \\
        --model huge --checkpoint imagebind_huge.pth [--modalities text,audio,vision] \\
        [--gpu-memory-gb 24] [--crop speaker|full] [--address ADDR] [--limit N]

Options can also come from a YAML file (``--config``, keys of
:class:`dgnode.embedding.pipeline.ExtractConfig`) and ``--set key=value`` overrides; explicit
flags win. ``jobs/extract.py`` takes the same options (for ``ray job submit``).
"""

from __future__ import annotations

import argparse
import json
import sys


def add_extract_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", help="manifest.parquet (or the scan directory holding it)")
    parser.add_argument("--store", help="feature store directory (created; re-runs resume)")
    parser.add_argument("--model", choices=["tiny", "huge"], help="ImageBind size (default huge; tiny = random-init demo)")
    parser.add_argument("--checkpoint", help="imagebind_huge.pth (loaded with weights_only=True, memory-mapped)")
    parser.add_argument("--modalities", help="comma-separated subset of text,audio,vision (default all)")
    parser.add_argument("--gpu-memory-gb", type=float, help="memory budget that sets batch sizes (default 24)")
    parser.add_argument("--crop", choices=["speaker", "full"], help="video crop: the speaker's half (default) or the full frame")
    parser.add_argument("--keep-noise-tags", action="store_true", default=None, help="keep [LAUGHTER] etc. in the text")
    parser.add_argument("--address", help="Ray cluster address (default: a local Ray)")
    parser.add_argument("--limit", type=int, help="extract at most N not-yet-stored utterances")
    parser.add_argument("--max-batch-size", type=int, help="cap on utterances per embedding batch (default 32)")
    parser.add_argument("--num-actors", type=int, help="embedding actors (default: one per GPU, else 1)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where the model runs (default auto)")
    parser.add_argument("--engine", choices=["ray", "process"], default="ray",
                        help="ray (default) or a plain single-process loop (debugging, baselines)")
    parser.add_argument("--config", help="YAML file with ExtractConfig keys")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, repeatable")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extract",
        help="embed manifest utterances with ImageBind into a feature store (Ray Data)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_extract_arguments(parser)
    parser.set_defaults(handler=extract_command)


def config_from_args(args: argparse.Namespace):
    """ExtractConfig from ``--config``, then ``--set``, then explicit flags."""
    from dgnode.options import load_config
    from dgnode.embedding.pipeline import ExtractConfig

    overrides = list(args.set)
    flags = {
        "manifest": args.manifest,
        "store": args.store,
        "model": args.model,
        "checkpoint": args.checkpoint,
        "gpu_memory_gb": args.gpu_memory_gb,
        "address": args.address,
        "limit": args.limit,
        "max_batch_size": args.max_batch_size,
        "num_actors": args.num_actors,
        "device": args.device,
        "media.video.crop": args.crop,
        "media.text.keep_noise_tags": args.keep_noise_tags,
    }
    for key, value in flags.items():
        if value is not None:
            overrides.append(f"{key}={json.dumps(value)}")
    if args.modalities is not None:
        overrides.append(f"modalities=[{args.modalities}]")
    if args.no_progress:
        overrides.append("progress=false")
    config = load_config(ExtractConfig, args.config, overrides)
    from dgnode.errors import InputError

    if not config.manifest or not config.store:
        raise InputError("--manifest and --store are required (or manifest/store in --config)")
    return config


def extract_command(args: argparse.Namespace) -> int:
    from rich.console import Console

    from dgnode.embedding.pipeline import run_extraction

    config = config_from_args(args)
    summary = run_extraction(config, engine=args.engine)
    if args.json:
        print(json.dumps(summary.as_dict(), indent=2, default=str))
    else:
        Console(file=sys.stdout).print(summary.table())
    return 0
