"""`dgnode tune`: a Ray Tune search (Optuna TPE + ASHA) tracked in MLflow; `--resume` continues one."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tune",
        help="hyperparameter search with Ray Tune (Optuna + ASHA), every trial an MLflow run",
        description="Search a YAML search space over a feature store. Trials that hit the NFE cap or diverge are "
        "recorded as failed and the search goes on; the best trial's model is evaluated once on the test split and "
        "registered. An interrupted search (Ctrl-C) continues with --resume --out DIR.",
    )
    parser.add_argument("--store", help="feature store directory (new search)")
    parser.add_argument("--space", help="search space YAML, e.g. configs/search_space_dgode.yaml (new search)")
    parser.add_argument("--trials", type=int, default=None, help="number of trials (default 20)")
    parser.add_argument("--config", default=None, help="training config YAML the space varies (default: built-in defaults)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override applied before the search space, repeatable (e.g. train.batch_size=8)")
    parser.add_argument("--workers-per-trial", type=int, default=1, help="1: train in the Tune actor; >1: Ray Train DDP workers")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per training worker (0: CPU)")
    parser.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs per training worker")
    parser.add_argument("--max-concurrent", type=int, default=2, help="trials running at once")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per trial (ASHA max_t; default train.epochs)")
    parser.add_argument("--grace-period", type=int, default=4,
                        help="ASHA: epochs before a trial can be stopped (bench/bench_asha.py: 1 cut the best configurations)")
    parser.add_argument("--reduction-factor", type=float, default=2.0, help="ASHA: halving rate")
    parser.add_argument("--seed", type=int, default=0, help="seed of the TPE sampler")
    parser.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db")
    parser.add_argument("--experiment", default="dgnode-tune", help="MLflow experiment (and registered model) name")
    parser.add_argument("--registered-model", default=None, help="registered model name (default: the experiment name)")
    parser.add_argument("--out", default="tune_runs", help="search directory: Tune state, checkpoints, search.json, summary.json")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted search in --out")
    parser.add_argument("--stop-after", type=int, default=None, metavar="N",
                        help="end this session as Ctrl-C would once N trials have finished in it (resume later)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run_tune)


def run_tune(args: argparse.Namespace) -> int:
    import os

    from rich.console import Console
    from rich.table import Table

    from dgnode.errors import DgnodeError
    from dgnode.tuning.search import TuneSettings, run_search

    # MLflow prints a "View run at <url>" line for every run it ends: dozens per search.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    console = Console(width=max(Console().width, 130))
    if args.resume:
        given = [flag for flag, value in (("--store", args.store), ("--space", args.space), ("--trials", args.trials),
                                          ("--config", args.config)) if value]
        if given:
            raise DgnodeError(f"--resume continues the search recorded in {args.out}/search.json; drop {', '.join(given)}")
        outcome = run_search(args.out, tracking_uri=args.tracking_uri, resume=True, progress=not args.no_progress,
                             stop_after=args.stop_after)
    else:
        missing = [flag for flag, value in (("--store", args.store), ("--space", args.space)) if not value]
        if missing:
            raise DgnodeError(f"a new search needs {' and '.join(missing)}")
        settings = TuneSettings(
            trials=args.trials if args.trials is not None else 20,
            workers_per_trial=args.workers_per_trial,
            gpus_per_worker=args.gpus_per_worker,
            cpus_per_worker=args.cpus_per_worker,
            max_concurrent=args.max_concurrent,
            epochs=args.epochs,
            grace_period=args.grace_period,
            reduction_factor=args.reduction_factor,
            seed=args.seed,
            experiment=args.experiment,
            registered_model=args.registered_model,
        )
        outcome = run_search(args.out, store=args.store, space_path=args.space, settings=settings,
                             config_path=args.config, overrides=args.overrides, tracking_uri=args.tracking_uri,
                             progress=not args.no_progress, stop_after=args.stop_after)

    table = Table(title=f"search {outcome.parent_run_id[:8]} in {outcome.out_dir}")
    for column in ("trial", "status", "epochs", "best valid wF1", "note"):
        table.add_column(column, justify="right" if column in ("epochs", "best valid wF1") else "left")
    for trial in sorted(outcome.trials, key=lambda t: -(t.best_valid_wf1 or -1.0)):
        colour = {"TERMINATED": "green", "ERROR": "red"}.get(trial.status, "yellow")
        note = trial.error or ("best" if trial.trial_id == outcome.best_trial_id else "")
        table.add_row(trial.trial_id, f"[{colour}]{trial.status}[/]", str(trial.epochs),
                      "-" if trial.best_valid_wf1 is None else f"{trial.best_valid_wf1:.4f}", note[:100])
    console.print(table)
    done = sum(t.status in ("TERMINATED", "ERROR") for t in outcome.trials)
    failed = sum(t.status == "ERROR" for t in outcome.trials)
    if outcome.interrupted:
        console.print(f"[yellow]search interrupted after {done} finished trial(s); continue with: "
                      f"dgnode tune --resume --out {outcome.out_dir}[/]")
        return 130
    test = outcome.test
    console.print(
        f"{done} trials ({failed} failed) in {outcome.seconds:.0f}s; best trial {outcome.best_trial_id}: "
        f"valid wF1 {outcome.best_valid_wf1:.4f}"
        + (f", test wF1 {test['weighted_f1']:.4f}, test acc {test['accuracy']:.4f}" if test else "")
        + f"; model {outcome.model_uri} (version {outcome.model_version}); MLflow {outcome.tracking_uri}"
    )
    return 0
