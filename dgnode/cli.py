"""The ``dgnode`` command line: a thin layer over the library.

Each stage package owns a ``cli`` module with ``register(subparsers)``; this file only collects
them. Handlers import heavy dependencies (torch, ray) lazily so ``dgnode --help`` stays fast.
A handler returns an exit code; :class:`dgnode.errors.DgnodeError` becomes a one-line message
on stderr and exit code 2 instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from dgnode.errors import DgnodeError

# Stage packages with a `cli.register(subparsers)`; a stage adds itself here.
STAGE_CLIS = (
    "dgnode.corpus.cli",
    "dgnode.embedding.cli",
    "dgnode.features.cli",
    "dgnode.tracking.cli",
    "dgnode.tuning.cli",
    "dgnode.cluster",
    "dgnode.training.cli",
    "dgnode.study.cli",
    "dgnode.streaming.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dgnode",
        description="Multimodal emotion recognition in conversation: corpus, extraction, DGODE/CORECT, Ray, MLflow.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in STAGE_CLIS:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.handler(args)
    except DgnodeError as error:
        print(f"dgnode: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dgnode: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
