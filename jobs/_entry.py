"""Shared start of every `ray job submit` entrypoint: make the checkout importable (a Ray job's
working directory is a plain copy of the repository, not an installed package) and hand the
arguments to the `dgnode` command line, so a job takes exactly the options of its command."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run(command: str) -> None:
    from dgnode.cli import main

    sys.exit(main([command, *sys.argv[1:]]))
