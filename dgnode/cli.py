"""The ``dgnode`` command line: a thin layer over the library.

Each stage package's ``cli`` module lists its :class:`~dgnode.command.Command` objects in
``COMMANDS``; this file only collects them. Handlers import heavy dependencies (torch, ray) lazily
so ``dgnode --help`` stays fast. A :class:`dgnode.errors.DgnodeError` or a bad option value becomes
one line on stderr and exit code 2 instead of a traceback.
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

from dgnode.command import Command, run_command

__all__ = ["DESCRIPTION", "STAGE_CLIS", "commands", "main"]

# Stage packages with a `COMMANDS` tuple; a stage adds itself here.
STAGE_CLIS = (
    "dgnode.corpus.cli",
    "dgnode.embedding.cli",
    "dgnode.features.cli",
    "dgnode.tracking.cli",
    "dgnode.tuning.cli",
    "dgnode.cluster.cli",
    "dgnode.training.cli",
    "dgnode.study.cli",
    "dgnode.streaming.cli",
    "dgnode.pipeline.cli",
)

DESCRIPTION = "Multimodal emotion recognition in conversation: corpus, extraction, DGODE/CORECT, Ray, MLflow."


def commands() -> list[Command]:
    return [command for module in STAGE_CLIS for command in importlib.import_module(module).COMMANDS]


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(commands(), argv, prog="dgnode", description=DESCRIPTION)


if __name__ == "__main__":
    sys.exit(main())
