"""Ray job: re-evaluate a finished training run (same options as ``dgnode evaluate``).

    ray job submit --working-dir . -- python jobs/evaluate.py --run runs/dgode --split test

Writes RUN/eval_<split>.json and prints the metrics as JSON on the last line.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dgnode.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
