"""``dgnode train`` and ``dgnode evaluate``.

``dgnode train --store S [--config YAML] [--set key=value ...] --out DIR`` trains, tests the best
checkpoint once, prints a summary table and, as the last line of stdout, the final metrics as
JSON. ``dgnode evaluate --run DIR [--split test]`` re-evaluates ``DIR/best.pt`` with
``DIR/config.yaml``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="train a model (DGODE, baselines) on a feature store",
        description="Train with early stopping on valid weighted F1, then evaluate the best checkpoint on test once.",
    )
    train.add_argument("--store", required=True, help="feature store directory (sets data.store)")
    train.add_argument("--config", default=None, help="YAML config (e.g. configs/dgode_iemocap.yaml); defaults otherwise")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set model.hidden=256 (repeatable)")
    train.add_argument("--out", required=True, help="run directory for config.yaml, best.pt, report.json, figures")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(handler=run_train)

    evaluate = subparsers.add_parser(
        "evaluate",
        help="re-evaluate a finished run's best checkpoint",
        description="Load RUN/config.yaml and RUN/best.pt, evaluate one split, print the metrics.",
    )
    evaluate.add_argument("--run", required=True, help="run directory written by `dgnode train`")
    evaluate.add_argument("--split", default="test", choices=["train", "valid", "test"])
    evaluate.add_argument("--store", default=None, help="feature store to use instead of the one in the run's config")
    evaluate.add_argument("--device", default=None, help="device (default: the run's train.device)")
    evaluate.set_defaults(handler=run_evaluate)


def run_train(args: argparse.Namespace) -> int:
    from rich.console import Console

    from dgnode.errors import InputError
    from dgnode.features.dataset import load_conversations
    from dgnode.reporting.report import metrics_table, run_table
    from dgnode.training.config import load_train_config
    from dgnode.training.trainer import fit

    if not Path(args.store).is_dir():
        raise InputError("feature store directory not found", path=args.store)
    config = load_train_config(args.config, [*args.overrides, f"data.store={args.store}"])
    data = load_conversations(config.data.store, config.data.modalities, config.data.normalise)
    result = fit(config, data, args.out, progress=not args.no_progress)
    console = Console(stderr=False, width=120)
    console.print(run_table(result.report, title=f"dgnode train: {config.model.name}"))
    final = {
        "out_dir": str(result.out_dir),
        "model": config.model.name,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped": result.stopped,
        "best_valid_weighted_f1": result.best_valid_wf1,
    }
    if result.test is not None:
        console.print(metrics_table(result.test.summary(), data.label_names, title="Test (best checkpoint)"))
        final.update(
            test_weighted_f1=result.test.weighted_f1,
            test_accuracy=result.test.accuracy,
            test_per_class_f1=result.test.per_class_f1,
        )
    print(json.dumps(final), flush=True)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from rich.console import Console

    from dgnode.reporting.report import metrics_table, write_json
    from dgnode.training.trainer import load_run

    trainer, config = load_run(args.run, store=args.store, device=args.device)
    result = trainer.evaluate(args.split)
    summary = result.summary()
    write_json(summary, Path(args.run) / f"eval_{args.split}.json")
    Console(width=120).print(metrics_table(summary, trainer.data.label_names, title=f"{args.split} ({args.run})"))
    print(json.dumps({"run": str(args.run), "model": config.model.name, **summary}), flush=True)
    return 0
