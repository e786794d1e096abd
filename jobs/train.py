"""One data-parallel training run on Ray Train, tracked in MLflow.

    ray job submit --working-dir . -- python jobs/train.py --store /shared/features/iemocap \
        --config configs/dgode_iemocap.yaml --workers 4 --gpus-per-worker 1 \
        --out /shared/ray_results --name dgode-iemocap --tracking-uri http://mlflow-head:5000

Relaunching with the same --out and --name resumes from the last checkpoint. See
dgnode/training/distributed.py for the sharding and why W workers reproduce one process.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", required=True, help="feature store directory, readable from every node")
    parser.add_argument("--config", default=None, help="training config YAML (default: built-in defaults)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="config override, repeatable")
    parser.add_argument("--workers", type=int, default=1, help="Ray Train workers (DDP)")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0)
    parser.add_argument("--cpus-per-worker", type=float, default=1.0)
    parser.add_argument("--max-failures", type=int, default=0, help="worker-group restarts from the last checkpoint")
    parser.add_argument("--out", default="ray_results", help="Ray Train storage path (made absolute)")
    parser.add_argument("--name", default="dgnode-train", help="run name; the same name resumes")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--experiment", default="dgnode-train")
    parser.add_argument("--registered-model", default=None)
    args = parser.parse_args(argv)

    import ray
    from rich.console import Console

    from dgnode.errors import DgnodeError
    from dgnode.training.config import load_train_config
    from dgnode.training.distributed import DistributedSettings, train_and_track

    try:
        config = load_train_config(args.config, [*args.overrides, f"data.store={args.store}"])
        settings = DistributedSettings(num_workers=args.workers, gpus_per_worker=args.gpus_per_worker,
                                       cpus_per_worker=args.cpus_per_worker, storage_path=os.path.abspath(args.out),
                                       name=args.name, max_failures=args.max_failures)
        if not ray.is_initialized():
            ray.init(address=os.environ.get("RAY_ADDRESS") or "local", log_to_driver=False)
        outcome = train_and_track(config, settings, args.tracking_uri, args.experiment, args.registered_model)
    except DgnodeError as error:
        print(f"jobs/train.py: error: {error}", file=sys.stderr)
        return 2
    test = outcome.test
    Console().print(
        f"{len(outcome.result.history)} epochs on {args.workers} worker(s); best epoch {outcome.result.best_epoch}: "
        f"valid wF1 {outcome.result.best_valid_wf1:.4f}"
        + (f", test wF1 {test['weighted_f1']:.4f}, acc {test['accuracy']:.4f}" if test else "")
        + f"; MLflow run {outcome.run_id}, model {outcome.model_uri} (version {outcome.model_version})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
