"""A hyperparameter search as a Ray job: exactly `dgnode tune` (same flags).

    ray job submit --working-dir . -- python jobs/tune.py --store /shared/features/iemocap \
        --space configs/search_space_dgode.yaml --trials 64 --max-concurrent 8 --epochs 60 \
        --tracking-uri http://mlflow-head:5000 --experiment dgode-iemocap --out /shared/tune/dgode

Inside a job RAY_ADDRESS points at the cluster, so trials run on its nodes; --out must then be a
path every node can read (or cloud storage). An interrupted search continues with
`python jobs/tune.py --resume --out DIR`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dgnode.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
