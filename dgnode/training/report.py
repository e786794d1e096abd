"""What a finished run writes: ``report.json`` and the figures (confusion matrix, per-class F1
(against the paper's for DGODE), t-SNE of the test representations)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dgnode.corpus.splits import SPLITS
from dgnode.options import to_dict
from dgnode.reporting.metrics import paper_reference

__all__ = ["build_report", "write_figures", "write_run_outputs"]

if TYPE_CHECKING:
    from dgnode.features.dataset import ConversationSet
    from dgnode.storage import Location
    from dgnode.training.config import TrainConfig
    from dgnode.training.evaluation import EvalResult
    from dgnode.training.rundir import RunDir
    from dgnode.training.trainer import Trainer


def build_report(*, config: "TrainConfig", data: "ConversationSet", trainer: "Trainer", history: list[dict],
                 test: "EvalResult | None", stopped: str, out_dir: "str | Path", train_time_s: float) -> dict[str, Any]:
    """The JSON-able record of a run."""
    best = next((h for h in history if h["epoch"] == trainer.best_epoch), None)
    return {
        "model": config.model.name,
        "out_dir": str(out_dir),
        "config": to_dict(config),
        "data": {
            "store": config.data.store,
            "modalities": list(trainer.modalities),
            "dims": dict(trainer.dims),
            "num_speakers": data.num_speakers,
            "label_names": list(data.label_names),
            "normalisation": data.normalisation.get("method"),
            "dialogues": {s: len(data.split(s)) for s in SPLITS},
            "utterances": {s: sum(len(c.utt_ids) for c in data.split(s)) for s in SPLITS},
        },
        "parameters": sum(p.numel() for p in trainer.core_model.parameters()),
        "epochs_run": len(history),
        "stopped": stopped,
        "best_epoch": trainer.best_epoch,
        "best_valid_weighted_f1": trainer.best_valid_wf1,
        "best_valid_accuracy": best["valid_acc"] if best else None,
        "mean_nfe": float(np.mean([h["nfe"] for h in history])) if history else 0.0,
        "train_time_s": train_time_s,
        "test": test.summary() if test is not None else None,
        "paper_reference": paper_reference(data.label_names, config.model.name),
        "history": history,
        "plots": {},
    }


def write_run_outputs(report: dict[str, Any], test: "EvalResult | None", label_names: list[str],
                      config: "TrainConfig", run: "RunDir") -> None:
    """Figures (when ``report.plots``) and the report; figure paths go into the report."""
    if test is not None and config.report.plots:
        report["plots"] = write_figures(test, label_names, run.location, config.report.tsne_points, config.train.seed,
                                        model=config.model.name)
    run.write_report(report)


def write_figures(result: "EvalResult", label_names: list[str], out_dir: "str | Path | Location", tsne_points: int,
                  seed: int, model: str = "dgode") -> dict[str, str]:
    """Confusion matrix, per-class F1 (with the paper's numbers when they apply: DGODE on IEMOCAP)
    and t-SNE PNGs of one evaluation of a ``model`` run into ``out_dir`` (a local directory or an
    ``s3://`` prefix); returns ``{figure: file name}``."""
    from dgnode.reporting.plots import plot_confusion, plot_per_class_f1, plot_tsne
    from dgnode.storage import resolve

    out_dir = resolve(out_dir)

    split = result.split
    reference = paper_reference(label_names, model)
    files = {
        "confusion": plot_confusion(result.confusion, label_names, out_dir / f"confusion_{split}.png",
                                    title=f"Confusion matrix ({split})").name,
        "per_class_f1": plot_per_class_f1(result.per_class_f1, out_dir / f"per_class_f1_{split}.png",
                                          reference=reference["per_class_f1"] if reference else None,
                                          reference_label="DGODE paper", title=f"Per-class F1 ({split})").name,
    }
    if tsne_points > 0 and result.representations is not None and int((result.labels >= 0).sum()) >= 5:
        files["tsne"] = plot_tsne(result.representations, result.labels, label_names, out_dir / f"tsne_{split}.png",
                                  max_points=tsne_points, seed=seed).name
    return files
