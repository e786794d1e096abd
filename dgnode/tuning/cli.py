"""``dgnode tune``: a Ray Tune search (Optuna TPE + ASHA) tracked in MLflow; ``--resume`` continues one."""

from __future__ import annotations

from dataclasses import dataclass

from dgnode.command import Command
from dgnode.training.config import TrainConfig
from dgnode.tuning.settings import TuneSettings

__all__ = ["COMMANDS", "TuneOptions", "run_tune"]


@dataclass
class TuneOptions(TuneSettings):
    """Search a YAML search space over a feature store (Ray Tune, Optuna TPE, ASHA), every trial an
    MLflow run. Trials that hit the NFE cap or diverge are recorded as failed and the search goes
    on; the best trial's model is evaluated once on the test split and registered. An interrupted
    search continues with --resume --out DIR.

    Attributes:
        space: search space YAML, e.g. configs/search_space_dgode.yaml (new search)
        out: search directory (a path or s3://bucket/prefix): Tune state, checkpoints, search.json, summary.json
        tracking_uri: MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)
        resume: continue the interrupted search in --out (its store, space and config come from there)
        stop_after: end this session as Ctrl-C would once N trials have finished in it (resume later)
        progress: show a progress bar
    """

    space: str | None = None
    out: str = "tune_runs"
    tracking_uri: str | None = None
    resume: bool = False
    stop_after: int | None = None
    progress: bool = True


def run_tune(options: TuneOptions, config: TrainConfig) -> int:
    import dataclasses
    import os

    from rich.console import Console

    from dgnode.errors import DgnodeError
    from dgnode.tuning.report import outcome_report
    from dgnode.tuning.search import run_search

    # MLflow prints a "View run at <url>" line for every run it ends: dozens per search.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    console = Console(width=max(Console().width, 130))
    if options.resume:
        given = [flag for flag, value in (("--data.store", config.data.store), ("--space", options.space)) if value]
        if given:
            raise DgnodeError(f"--resume continues the search recorded in {options.out}/search.json; drop {', '.join(given)}")
        outcome = run_search(options.out, tracking_uri=options.tracking_uri, resume=True, progress=options.progress,
                             stop_after=options.stop_after)
    else:
        missing = [flag for flag, value in (("--data.store", config.data.store), ("--space", options.space)) if not value]
        if missing:
            raise DgnodeError(f"a new search needs {' and '.join(missing)}")
        settings = TuneSettings(**{f.name: getattr(options, f.name) for f in dataclasses.fields(TuneSettings)})
        outcome = run_search(options.out, config, options.space, settings, tracking_uri=options.tracking_uri,
                             progress=options.progress, stop_after=options.stop_after)

    renderables, code = outcome_report(outcome)
    console.print(*renderables, sep="\n")
    return code


COMMANDS = (
    Command("tune", TuneOptions, run_tune, config=TrainConfig,
            help="hyperparameter search with Ray Tune (Optuna + ASHA), every trial an MLflow run"),
)
