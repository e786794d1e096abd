"""Ray job: ImageBind extraction into a feature store (same options as ``dgnode extract``).

    ray job submit --working-dir . -- python jobs/extract.py \\
        --manifest scan/manifest.parquet --store features/ --model huge --checkpoint /data/imagebind_huge.pth

Inside a Ray job the driver joins the job's cluster (the job server sets ``RAY_ADDRESS``, which
extraction honours), so ``--address`` is only needed when running this file by hand.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a plain checkout
from dgnode.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["extract", *sys.argv[1:]]))
