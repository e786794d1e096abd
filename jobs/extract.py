"""Ray job: ImageBind extraction into a feature store (same options as ``dgnode extract``).

    ray job submit --working-dir . -- python jobs/extract.py \\
        --manifest scan/manifest.parquet --store features/ --model huge --checkpoint /data/imagebind_huge.pth

Inside a Ray job the driver joins the job's cluster (the job server sets ``RAY_ADDRESS``, which
extraction honours), so ``--address`` is only needed when running this file by hand.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dgnode.embedding.cli import add_extract_arguments, extract_command  # noqa: E402
from dgnode.errors import DgnodeError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobs/extract.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_extract_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return extract_command(args)
    except DgnodeError as error:
        print(f"jobs/extract.py: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
