"""``dgnode predict``: per-utterance predictions of a trained run, streamed (causal runs) or batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dgnode.command import Command

__all__ = ["COMMANDS", "PredictOptions"]


@dataclass
class PredictOptions:
    """Predict the utterances of dialogues from a feature store with a trained run or a registered
    model. With --stream,
    each utterance is predicted from what came before it (a causal run, trained with wf=0, is
    required); prints every prediction and a latency summary. Without it, each dialogue is
    predicted in one pass over the whole dialogue.

    Attributes:
        run: run directory written by `dgnode train`
        model: instead of --run: a model logged by dgnode train/tune, e.g. models:/NAME/VERSION (its
            weights and config are read; no code or pickle from the registry is run)
        tracking_uri: with --model: MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)
        stream: stream utterance by utterance (causal runs only)
        store: feature store (default: the one the run was trained on)
        dialog: dialogue ids, e.g. [Ses05F_impro01] (default: every dialogue of --split)
        split: split to predict when no --dialog is given
        limit: at most this many dialogues
        verify: with --stream: also run the whole dialogue through the causal model and count differing predictions
        out: write the per-utterance predictions to this CSV
        quiet: print only the summary, not every utterance
        device: cpu, cuda, cuda:1...
        media: with --stream: embed each utterance from its raw media (this manifest's paths) with the
            store's own extraction model instead of reading stored vectors
        checkpoint: with --media: the ImageBind checkpoint the store was extracted with
    """

    run: str | None = None
    model: str | None = None
    tracking_uri: str | None = None
    stream: bool = False
    store: str | None = None
    dialog: list[str] | None = None
    split: Literal["train", "valid", "test"] = "test"
    limit: int | None = None
    verify: bool = False
    out: str | None = None
    quiet: bool = False
    device: str = "cpu"
    media: str | None = None
    checkpoint: str | None = None

    def __post_init__(self) -> None:
        if (self.run is None) == (self.model is None):
            raise ValueError("give exactly one of --run DIR and --model models:/NAME/VERSION")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {self.limit}")


def run_predict(options: PredictOptions) -> int:
    import os
    import tempfile

    if options.run is not None:
        return _predict(options, options.run)
    # A progress bar per download of a few small files would drown the predictions.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from dgnode.tracking.logged_model import fetch_run_dir
    from dgnode.tracking.server import check_tracking_uri, resolve_tracking_uri

    uri = resolve_tracking_uri(options.tracking_uri)
    check_tracking_uri(uri)
    with tempfile.TemporaryDirectory(prefix="dgnode-predict-") as tmp:
        return _predict(options, fetch_run_dir(options.model, uri, tmp))


def _predict(options: PredictOptions, run_dir) -> int:
    from pathlib import Path

    import pandas as pd
    from rich.console import Console

    from dgnode.errors import InputError
    from dgnode.streaming.causal import require_causal
    from dgnode.streaming.replay import predict_dialogues, select_conversations, stream_dialogues
    from dgnode.training.best import load_run
    from dgnode.training.rundir import RunDir

    run = RunDir(run_dir)
    if options.stream:
        require_causal(run.read_config().model, where=str(run.config_path))
    else:
        run.read_config()  # a clear error before anything heavy is loaded
        if options.verify or options.media:
            raise InputError("--verify and --media need --stream")
    trainer, config = load_run(run_dir, store=options.store, device=options.device)
    conversations = select_conversations(trainer.data, options.dialog, options.split, options.limit, config.data.store)
    console = Console(width=max(Console().width, 120))
    on_row = None if options.quiet else (lambda row: _print_row(console, row))
    if options.stream:
        replay = stream_dialogues(trainer, conversations, media=options.media, checkpoint=options.checkpoint,
                                  device=options.device, verify=options.verify, on_row=on_row)
    else:
        replay = predict_dialogues(trainer, conversations, on_row=on_row)
    frame = pd.DataFrame(replay.rows)
    if options.out:
        Path(options.out).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(options.out, index=False)
    console.print(_summary(options, config.model.name, len(conversations), frame, replay))
    return 1 if replay.mismatches else 0


def _summary(options: PredictOptions, model: str, dialogues: int, frame, replay):
    from rich.table import Table

    from dgnode.streaming.predictor import latency_summary

    labelled = frame[frame["true"] != ""]
    table = Table(title=f"predict {'--stream ' if options.stream else ''}{options.run or options.model} ({model})", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    table.add_row("dialogues / utterances", f"{dialogues} / {len(frame)}")
    if len(labelled):
        table.add_row("accuracy (labelled)", f"{100 * float((labelled['predicted'] == labelled['true']).mean()):.1f}% of {len(labelled)}")
    if options.stream:
        summary = latency_summary(replay.latencies_ms)
        table.add_row("latency per utterance (ms)",
                      f"mean {summary['mean']:.2f}, p50 {summary['p50']:.2f}, p95 {summary['p95']:.2f}, max {summary['max']:.2f}")
        if not replay.exact:
            table.add_row("note", "adaptive ODE solver: causal up to the solver tolerance only")
        if options.verify:
            table.add_row("differ from batch causal", f"{replay.mismatches} of {len(frame)}")
    if options.out:
        table.add_row("predictions", options.out)
    return table


def _print_row(console, row: dict) -> None:
    latency = f"  {row['latency_ms']:7.2f} ms" if "latency_ms" in row else ""
    true = row["true"] or "-"
    mark = "" if not row["true"] else (" ✓" if row["true"] == row["predicted"] else " ✗")
    console.print(
        f"{row['utt_id']:<28} #{row['position']:<3} {row['speaker']:<10} {row['predicted']:>6} ({row['probability']:.2f})"
        f"  true {true:>4}{mark}{latency}",
        highlight=False,
        markup=False,
    )


COMMANDS = (
    Command("predict", PredictOptions, run_predict,
            help="predict the utterances of dialogues from a feature store with a trained run (--stream: one at a time)"),
)
