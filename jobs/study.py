"""Ray job: the causal study (same options as ``dgnode study``), runs as Ray tasks.

    ray job submit --working-dir . -- python jobs/study.py \\
        --store /shared/features --models dgode,corect --seeds 5 --out /shared/study \\
        --config-dir configs --profile iemocap

Inside a Ray job the driver joins the job's cluster (``RAY_ADDRESS`` is set by the job
server) and every (model, mode, seed) run becomes a Ray task (``--cpus-per-run`` CPUs each);
without Ray (``--runner local``, or no cluster) the runs go one after another. ``--store`` and
``--out`` must be paths every node can read and write (shared storage).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dgnode.errors import DgnodeError  # noqa: E402
from dgnode.study.cli import add_study_arguments, study_command  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobs/study.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_study_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return study_command(args)
    except DgnodeError as error:
        print(f"jobs/study.py: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
