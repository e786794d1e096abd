"""Ray job: the causal study (same options as ``dgnode study``), runs as Ray tasks.

    ray job submit --working-dir . -- python jobs/study.py \\
        --store /shared/features --models [dgode,corect] --seeds 5 --out /shared/study \\
        --config_dir configs --profile iemocap

Inside a Ray job the driver joins the job's cluster (``RAY_ADDRESS`` is set by the job
server) and every (model, mode, seed) run becomes a Ray task (``--cpus_per_run`` CPUs each);
without Ray (``--runner local``, or no cluster) the runs go one after another. ``--store`` and
``--out`` must be paths every node can read and write (shared storage).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a plain checkout
from dgnode.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["study", *sys.argv[1:]]))
