"""The whole chain as one Ray job: corpus -> scan -> extract -> tune -> best model on test.

Local:    python jobs/pipeline.py --workdir demo_output
Cluster:  ray job submit --working-dir . --runtime-env-json '{"excludes": [".venv", "demo_output", "mlruns"]}' \
              -- python jobs/pipeline.py --workdir /mnt/dgnode --corpus-root $IEMOCAP_ROOT --checkpoint $IMAGEBIND_CHECKPOINT
Without --corpus-root it generates a mini-IEMOCAP and uses the tiny random-init ImageBind (unless
--checkpoint is given). IEMOCAP_ROOT and IMAGEBIND_CHECKPOINT are read from the environment.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a plain checkout (ray job working dir)

from dgnode.errors import DgnodeError  # noqa: E402
from dgnode.pipeline import PipelineConfig, mlflow_ui_hint, run_pipeline, summary_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    defaults = PipelineConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", action="store_true", help="force the embedded default (mini corpus, tiny model), ignoring IEMOCAP_ROOT/IMAGEBIND_CHECKPOINT")
    parser.add_argument("--workdir", default=defaults.workdir)
    parser.add_argument("--corpus-root", help="raw IEMOCAP tree (default: $IEMOCAP_ROOT, else a generated mini corpus)")
    parser.add_argument("--checkpoint", help="imagebind_huge.pth (default: $IMAGEBIND_CHECKPOINT)")
    parser.add_argument("--labels", default=defaults.labels, choices=["merc6", "raw6", "four"])
    parser.add_argument("--synth-dialogs", type=int)
    parser.add_argument("--modalities", default=",".join(defaults.modalities))
    parser.add_argument("--gpu-memory-gb", type=float, default=defaults.gpu_memory_gb)
    parser.add_argument("--config", default=defaults.train_config, help="base training config (YAML)")
    parser.add_argument("--space", default=defaults.space, help="search space (YAML)")
    parser.add_argument("--trials", type=int, default=defaults.trials)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--max-concurrent", type=int, default=defaults.max_concurrent)
    parser.add_argument("--workers-per-trial", type=int, default=defaults.workers_per_trial)
    parser.add_argument("--gpus-per-worker", type=float, default=defaults.gpus_per_worker)
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else WORKDIR/mlflow.db)")
    parser.add_argument("--experiment", default=defaults.experiment)
    parser.add_argument("--address", help="Ray address (default: a local Ray, or the job's cluster under `ray job submit`)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", action="store_true", help="also print the result as JSON (last line)")
    args = parser.parse_args(argv)

    config = PipelineConfig.from_environment(
        demo=args.demo,
        workdir=args.workdir,
        corpus_root=args.corpus_root,
        checkpoint=args.checkpoint,
        labels=args.labels,
        synth_dialogs=args.synth_dialogs,
        modalities=[m.strip() for m in args.modalities.split(",") if m.strip()],
        gpu_memory_gb=args.gpu_memory_gb,
        train_config=args.config,
        space=args.space,
        trials=args.trials,
        epochs=args.epochs,
        max_concurrent=args.max_concurrent,
        workers_per_trial=args.workers_per_trial,
        gpus_per_worker=args.gpus_per_worker,
        tracking_uri=args.tracking_uri,
        experiment=args.experiment,
        address=args.address,
        overrides=args.overrides,
    )
    try:
        result = run_pipeline(config)
    except DgnodeError as error:
        print(f"pipeline: error: {error}", file=sys.stderr)
        return 2

    from rich.console import Console

    console = Console()
    console.print(summary_table(result))
    console.print(mlflow_ui_hint(result.tracking_uri))
    if args.json:
        search = result.search
        print(json.dumps({
            "workdir": str(result.workdir),
            "store": str(result.store),
            "search_dir": str(result.search_dir),
            "tracking_uri": result.tracking_uri,
            "experiment_id": search.experiment_id,
            "parent_run_id": search.parent_run_id,
            "stored": result.extraction["stored"],
            "trials": len(search.trials),
            "best_valid_wf1": search.best_valid_wf1,
            "test": search.test,
            "model_uri": search.model_uri,
            "stage_seconds": result.stage_seconds,
        }, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
