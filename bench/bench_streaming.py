"""Streaming latency: one utterance at a time vs one batch pass over the whole dialogue.

For each model (causal mode, ``wf = 0``; the architecture of ``configs/{model}_{profile}.yaml``,
random weights: latency does not depend on what was learnt, except an adaptive ODE solver's
step count) and for the test dialogues of a synthetic store over the real IEMOCAP structure
(ImageBind-sized features, 1024-d per modality by default):

* **streaming**: :class:`dgnode.streaming.StreamingPredictor` pushes the raw vectors utterance
  by utterance; each push normalises, runs the causal model on the prefix ``0..i`` and returns
  the prediction. Per-utterance latency: mean, p50, p95, max.
* **baseline, measured in the same run**: one batch pass of the same model over each whole
  dialogue (median of ``--repeats``), and that time per utterance.
* ratios: the sum of a dialogue's push latencies / its batch pass (median over dialogues) and
  mean push latency / batch time per utterance -- what re-running the prefix costs in total
  against seeing the dialogue at once (between ``n / 2`` for model cost linear in the prefix and
  ``n`` when per-call overhead dominates); and median push latency / median whole-dialogue
  pass -- what one push costs against one offline pass.
* ``agree``: streamed labels equal to the batch pass's labels (must be all of them).

Each dialogue is streamed ``--repeats`` times and each position's latency is the median, as the
batch pass is the median of ``--repeats`` passes.

Run: ``.venv/bin/python bench/bench_streaming.py [--models dgode,corect] [--profile iemocap]
[--dialogues 8] [--dims text=1024,audio=1024,vision=1024] [--threads N] [--out result.json]``.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.report, from a plain checkout

from bench.report import emit  # noqa: E402
from dgnode.features.dataset import collate, load_conversations  # noqa: E402
from dgnode.features.store import FeatureStore
from dgnode.features.synth import synthesize_features
from dgnode.models.registry import build_model
from dgnode.streaming import StreamingPredictor, latency_summary
from dgnode.training.config import load_train_config

ROOT = Path(__file__).resolve().parents[1]
STRUCTURE = ROOT / "dgnode" / "data" / "iemocap_structure.json"


def parse_dims(text: str) -> dict[str, int]:
    return {name: int(value) for name, value in (item.split("=") for item in text.split(","))}


def bench_model(name: str, profile: str, data, stored, dialogues: list, repeats: int, overrides: dict) -> dict:
    config_path = ROOT / "configs" / f"{name}_{profile}.yaml"
    config = load_train_config(config_path, {**overrides, "model.wf": 0})
    torch.manual_seed(0)
    model = build_model(config.model, data.dims, data.num_speakers, data.num_classes).eval()
    predictor = StreamingPredictor(model, config.model, data.dims, data.label_names, data.normalisation, data.num_speakers)
    frame = stored.frame
    ids = frame["dialog_id"].to_numpy()

    def stream(conversation) -> list:
        rows = np.flatnonzero(ids == conversation.dialog_id)
        names = frame["speaker"].iloc[rows].astype(str).tolist()
        predictor.start(conversation.dialog_id, speakers=names)
        return [predictor.push({m: stored.vectors[m][r] for m in data.dims}, names[k]) for k, r in enumerate(rows.tolist())]

    stream(dialogues[0])  # warm-up: allocator, kernels, lazy imports
    latencies, batch_ms, totals, agree, total = [], [], [], 0, 0
    for conversation in tqdm(dialogues, desc=f"stream {name}", unit="dialogue", file=sys.stderr):
        # Each dialogue streamed `repeats` times; a position's latency is its median (a shared
        # machine's stalls would otherwise dominate the tail).
        runs = [stream(conversation) for _ in range(repeats)]
        position_ms = np.median([[p.latency_ms for p in run] for run in runs], axis=0)
        latencies += position_ms.tolist()
        times = []
        with torch.no_grad():
            for _ in range(repeats):
                started = time.perf_counter()
                labels = model(collate([conversation])).logits.argmax(dim=1).tolist()
                times.append((time.perf_counter() - started) * 1000.0)
        whole = statistics.median(times)
        batch_ms.append(whole)
        totals.append(float(position_ms.sum()) / whole)
        agree += sum(p.label == label for run in runs for p, label in zip(run, labels))
        total += len(conversation) * repeats
    summary = latency_summary(latencies)
    mean_batch = float(np.mean(batch_ms))
    batch_per_utterance = float(np.sum(batch_ms) / len(latencies))
    return {
        "config": str(config_path.relative_to(ROOT)),
        "hidden": config.model.hidden,
        "parameters": sum(p.numel() for p in model.parameters()),
        "exact_causality": predictor.exact,
        "utterances": len(latencies),
        "streaming_ms_per_utterance": {k: round(v, 3) if isinstance(v, float) else v for k, v in summary.items()},
        "batch_pass_ms_per_dialogue_mean": round(mean_batch, 3),
        "batch_pass_ms_per_utterance": round(batch_per_utterance, 4),
        # What streaming costs in total against seeing the dialogue at once (median over dialogues).
        "ratio_streaming_dialogue_vs_batch_pass": round(float(np.median(totals)), 2),
        "ratio_streaming_vs_batch_per_utterance": round(summary["mean"] / batch_per_utterance, 2),
        # What one push costs against one offline pass over the whole dialogue.
        "ratio_push_p50_vs_whole_dialogue_pass": round(summary["p50"] / float(np.median(batch_ms)), 3),
        "agree": f"{agree}/{total}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="dgode,corect")
    parser.add_argument("--profile", default="iemocap", help="configs/{model}_{profile}.yaml gives the architecture")
    parser.add_argument("--dialogues", type=int, default=8, help="test dialogues to stream (of 31)")
    parser.add_argument("--dims", default="text=1024,audio=1024,vision=1024", help="feature dims (ImageBind: 1024 each)")
    parser.add_argument("--repeats", type=int, default=3, help="streams and batch passes per dialogue (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--overrides", type=yaml.safe_load, default={},
                        help="train-config keys for every model, a YAML mapping: '{model.hidden: 64}'")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_streaming_") as tmp:
        synthesize_features(STRUCTURE, Path(tmp) / "store", parse_dims(args.dims), seed=0)
        data = load_conversations(Path(tmp) / "store")
        stored = FeatureStore.open(Path(tmp) / "store").load()
    dialogues = data.split("test")[: args.dialogues]
    result = {
        "benchmark": "streaming",
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "dims": data.dims,
        "dialogues": len(dialogues),
        "dialogue_lengths": [len(c) for c in dialogues],
        "models": {
            name: bench_model(name, args.profile, data, stored, dialogues, args.repeats, args.overrides)
            for name in args.models.split(",")
        },
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
