"""DGODE training cost on an IEMOCAP-scale synthetic store: model vs baseline, solver vs solver.

One run measures, on the same data and the same initial weights:

* the training time (forward + backward + Adam, batches of 16 dialogues) of the BiGRU baseline
  and of DGODE with each solver: ``exact`` (the closed form, rtol 1e-3 and 1e-6: its relative
  truncation bound), dopri5 at rtol/atol 1e-3/1e-4 (the configs' default), rk4 (fixed step 0.25: 16
  evaluations); on request also dopri5 1e-5/1e-7 and euler (step 0.1: 10 evaluations);
* the mean function evaluations (NFE) per batch of each solver (for ``exact``: products with Â);
* how far each solver's logits are from a tight reference solve (dopri5, 1e-7/1e-9) of the
  same untrained model on one batch;
* ratios against the baselines measured in the same run: DGODE / BiGRU time, and each
  solver / dopri5-1e-3 time and NFE.

Inputs have the paper's dims (text 1024, audio 1582, vision 342), hidden 512 by default, and the
108 train dialogues (7 batches) make an epoch. A full epoch at hidden 512 takes minutes on 2
shared CPU cores: ``--max-batches N`` times the first N batches only; the JSON then says so
(``timed``), gives seconds per batch, and ``epoch_s_estimate`` = seconds per batch x batches per
epoch. The spectral bounds of Â (one dense eigen-solve per dialogue length, cached for the
process) are computed before timing and reported as ``spectral_cache_s``.

Run: ``.venv/bin/python bench/bench_dgode.py [--hidden 512] [--max-batches N] [--device cpu]``.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from dgnode.features.dataset import iterate_batches, load_conversations
from dgnode.features.synth import synthesize_features
from dgnode.graph import batch_spectral_bounds
from dgnode.training.config import load_train_config
from dgnode.training.trainer import Trainer

STRUCTURE = Path(__file__).resolve().parents[1] / "dgnode" / "data" / "iemocap_structure.json"
PAPER_DIMS = {"text": 1024, "audio": 1582, "vision": 342}
VARIANTS = {
    "bigru": {"model.name": "bigru"},
    "dgode_exact": {"model.ode.method": "exact", "model.ode.rtol": 1e-3},
    "dgode_exact_1e-6": {"model.ode.method": "exact", "model.ode.rtol": 1e-6},
    "dgode_dopri5_1e-3": {"model.ode.method": "dopri5", "model.ode.rtol": 1e-3, "model.ode.atol": 1e-4},
    "dgode_rk4_0.25": {"model.ode.method": "rk4", "model.ode.step_size": 0.25},
    "dgode_dopri5_1e-5": {"model.ode.method": "dopri5", "model.ode.rtol": 1e-5, "model.ode.atol": 1e-7},
    "dgode_euler_0.1": {"model.ode.method": "euler", "model.ode.step_size": 0.1},
}
DEFAULT_VARIANTS = ("bigru", "dgode_exact", "dgode_exact_1e-6", "dgode_dopri5_1e-3", "dgode_rk4_0.25")
BATCH = 16
REFERENCE = {"model.ode.method": "dopri5", "model.ode.rtol": 1e-7, "model.ode.atol": 1e-9}


def make_trainer(data, hidden: int, overrides: dict, device: str) -> Trainer:
    config = load_train_config(None, {"model.hidden": hidden, "train.seed": 0, "train.nfe_cap": 100000, "train.batch_size": BATCH,
                                      "train.device": device, **overrides})
    return Trainer(config, data)


def time_training(trainer: Trainer, conversations, device: str) -> dict:
    # One warm-up batch outside the timing: first-call allocations and kernel selection.
    trainer.train_epoch(conversations[:BATCH], epoch=-1)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    cpu_started = time.process_time()
    stats = trainer.train_epoch(conversations, epoch=0)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    cpu = time.process_time() - cpu_started
    batches = stats["batches"]
    return {
        "seconds": stats["epoch_time"],
        # CPU seconds of all this process's threads: less sensitive than wall time to other
        # processes sharing the cores (the usual state of a shared 2-core machine).
        "cpu_seconds": cpu,
        "batches": batches,
        "seconds_per_batch": stats["epoch_time"] / batches,
        "cpu_seconds_per_batch": cpu / batches,
        "nfe_per_batch": stats["nfe"],
    }


@torch.no_grad()
def logits_of(trainer: Trainer, batch) -> torch.Tensor:
    trainer.core_model.eval()
    return trainer.core_model(batch.to(trainer.device)).logits.double().cpu()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--max-batches", type=int, default=0, help="time the first N batches only (0: the whole epoch)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help="comma-separated subset of " + ",".join(VARIANTS))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    result: dict = {
        "hidden": args.hidden,
        "dims": PAPER_DIMS,
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
    }
    if args.device.startswith("cuda"):
        result["gpu"] = torch.cuda.get_device_name(0)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        store = synthesize_features(STRUCTURE, Path(tmp) / "store", PAPER_DIMS, seed=0)
        data = load_conversations(store)
        result["store_s"] = time.perf_counter() - started
    train = data.split("train")
    epoch_batches = -(-len(train) // BATCH)
    result["train_dialogues"] = len(train)
    result["batches_per_epoch"] = epoch_batches
    if args.max_batches and args.max_batches < epoch_batches:
        train = train[: BATCH * args.max_batches]
        result["timed"] = (f"the first {args.max_batches} of {epoch_batches} batches of an epoch (a full epoch at this "
                           f"width is too slow here); epoch_s_estimate = seconds per batch x {epoch_batches}")
    else:
        result["timed"] = f"one full epoch ({epoch_batches} batches)"
    result["timed_utterances"] = sum(len(c.utt_ids) for c in train)

    cache_started = time.perf_counter()
    for wf in (-1, 0):  # what the bench's graphs need: every dialogue length, 3 modalities
        batch_spectral_bounds(torch.tensor([len(c) for c in data.conversations]), len(PAPER_DIMS), -1, wf, 0.9)
    result["spectral_cache_s"] = time.perf_counter() - cache_started

    probe = next(iterate_batches(data.split("test"), BATCH, shuffle=False))
    reference = logits_of(make_trainer(data, args.hidden, REFERENCE, args.device), probe)
    runs = {}
    for name in args.variants.split(","):
        trainer = make_trainer(data, args.hidden, VARIANTS[name], args.device)
        entry = {}
        if name.startswith("dgode"):
            # Same seed, same shapes: the same initial weights as the reference model.
            entry["max_abs_logit_error_vs_tight_dopri5"] = float((logits_of(trainer, probe) - reference).abs().max())
        entry.update(time_training(trainer, train, args.device))
        entry["epoch_s_estimate"] = entry["seconds_per_batch"] * epoch_batches
        runs[name] = entry
        del trainer
    result["runs"] = runs
    result["wall_s"] = time.perf_counter() - started
    if "bigru" in runs:
        base, cpu_base = runs["bigru"]["seconds_per_batch"], runs["bigru"]["cpu_seconds_per_batch"]
        result["time_over_bigru"] = {k: v["seconds_per_batch"] / base for k, v in runs.items() if k != "bigru"}
        result["cpu_over_bigru"] = {k: v["cpu_seconds_per_batch"] / cpu_base for k, v in runs.items() if k != "bigru"}
    if "dgode_dopri5_1e-3" in runs:
        base = runs["dgode_dopri5_1e-3"]
        result["over_dopri5_1e-3"] = {
            k: {
                "time": v["seconds_per_batch"] / base["seconds_per_batch"],
                "cpu": v["cpu_seconds_per_batch"] / base["cpu_seconds_per_batch"],
                "nfe": v["nfe_per_batch"] / base["nfe_per_batch"],
            }
            for k, v in runs.items() if k.startswith("dgode") and k != "dgode_dopri5_1e-3"
        }
    print(json.dumps(_rounded(result), indent=1))


def _rounded(value):
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


if __name__ == "__main__":
    main()
