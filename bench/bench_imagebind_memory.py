"""ImageBind-huge activation memory measured on the CPU, against the cost model that plans GPU batches.

For each of vision, audio and text, in float32 and bfloat16, at 1, 2 and 4 utterances (15 video
clips, 3 audio clips, 1 token sequence each): the peak memory above the weights of one forward
pass in inference mode, from torch's allocator accounting (the profiler's memory events,
:mod:`dgnode.embedding.probe`), for the CPU's own SDPA path (its flash kernel, what fused CUDA
kernels also allocate: output and log-sum-exp) and for the math path (SDPBackend.MATH). The
model is the real huge architecture with random weights, one modality at a time, with a trunk of
``--blocks`` full-width blocks: without autograd one block's activations are alive at a time, which
``--depth-check`` confirms once against the full depth. Each measurement is set against
:func:`dgnode.embedding.memory.activation_bytes_per_item` (input counted once, as the probe holds
it), and the per-item bytes and fixed bytes come from a least-squares line over the batches.

    python bench/bench_imagebind_memory.py [--blocks 2] [--batches 1,2,4] [--out result.json]

Took 408 s here on 2 cores shared with other work (load average 12), most of it vision in
float32 and the 32-block depth check. Prints one JSON object (per-measurement lines go to stderr).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # dgnode from this checkout
from bench.report import emit  # noqa: E402

import torch  # noqa: E402

from dgnode.embedding.memory import (  # noqa: E402
    SAFETY_MARGIN,
    activation_bytes_per_item,
    plan_batch_sizes,
)
from dgnode.embedding.model import EXTRACTED_MODALITIES, HUGE, random_branch  # noqa: E402
from dgnode.embedding.probe import activation_peak  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# The CPU's default SDPA choice stands for CUDA's fused kernels; the math path is the same code everywhere.
PATHS = {"default": "fused", "math": "math"}
CUDA_BOUND = (
    "CUDA fused attention (flash / memory-efficient / cuDNN SDPA) allocates its output and a float32 "
    "log-sum-exp, as the CPU flash kernel measured here does; in every trunk the attention then stays "
    "below the MLP peak, so the CPU default path is the bound taken for CUDA (cost model 'fused'). The "
    "math path upcasts 16-bit Q/K/V to float32 on every device and is the fallback bound ('math')."
)


def _line(points: list[tuple[int, int]]) -> tuple[float, float]:
    """Least-squares ``bytes = fixed + per_item * batch``."""
    n = len(points)
    mean_x = sum(b for b, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((b - mean_x) ** 2 for b, _ in points)
    slope = sum((b - mean_x) * (y - mean_y) for b, y in points) / spread if spread else mean_y / mean_x
    return slope, mean_y - slope * mean_x


def _error_pct(measured: float, predicted: float) -> float:
    return round(100.0 * (predicted - measured) / measured, 3)


def sweep(modality: str, dtype_name: str, blocks: int, batches: list[int]) -> list[dict]:
    loaded = random_branch("huge", modality, num_blocks=blocks, dtype=DTYPES[dtype_name])
    rows = []
    for attention, path in PATHS.items():
        for batch in batches:
            peak = activation_peak(loaded, modality, batch, attention)
            predicted = batch * activation_bytes_per_item(
                HUGE, modality, DTYPES[dtype_name].itemsize, path, input_copies=1)
            rows.append({
                "modality": modality, "dtype": dtype_name, "attention": attention, "model_path": path,
                "batch": batch, "blocks": blocks, "measured_peak_bytes": peak.peak_bytes,
                "forward_peak_bytes": peak.forward_peak_bytes, "input_bytes": peak.input_bytes,
                "predicted_peak_bytes": predicted, "error_pct": _error_pct(peak.peak_bytes, predicted),
                "seconds": round(peak.seconds, 2),
            })
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    del loaded
    gc.collect()
    return rows


def per_item(rows: list[dict]) -> dict:
    """Fitted per-item and fixed bytes per (modality, dtype, path), against the model's per-item bytes."""
    fits: dict = {}
    for key in sorted({(r["modality"], r["dtype"], r["attention"]) for r in rows}):
        points = [(r["batch"], r["measured_peak_bytes"]) for r in rows if (r["modality"], r["dtype"], r["attention"]) == key]
        slope, fixed = _line(points)
        modality, dtype_name, attention = key
        predicted = activation_bytes_per_item(HUGE, modality, DTYPES[dtype_name].itemsize, PATHS[attention], input_copies=1)
        fits.setdefault(modality, {}).setdefault(dtype_name, {})[attention] = {
            "measured_bytes_per_item": round(slope), "measured_fixed_bytes": round(fixed),
            "predicted_bytes_per_item": predicted, "error_pct": _error_pct(slope, predicted),
        }
    return fits


def depth_check(modality: str, dtype_name: str, batch: int, short_blocks: int) -> dict:
    """The same batch through the short trunk and the full one: the peak must not move."""
    full_blocks = getattr(HUGE, f"{modality}_num_blocks")
    result = {"modality": modality, "dtype": dtype_name, "batch": batch, "attention": "default"}
    for label, blocks in (("short", short_blocks), ("full", full_blocks)):
        loaded = random_branch("huge", modality, num_blocks=blocks, dtype=DTYPES[dtype_name])
        peak = activation_peak(loaded, modality, batch)
        result[f"{label}_blocks"] = blocks
        result[f"{label}_peak_bytes"] = peak.peak_bytes
        result[f"{label}_seconds"] = round(peak.seconds, 2)
        del loaded
        gc.collect()
    result["full_over_short"] = round(result["full_peak_bytes"] / result["short_peak_bytes"], 6)
    return result


def thread_check(blocks: int) -> dict:
    """Allocations inside worker threads would escape the profiler: one thread must measure the same."""
    loaded = random_branch("huge", "audio", num_blocks=blocks, dtype=torch.float32)
    threads = torch.get_num_threads()
    many = activation_peak(loaded, "audio", 2).peak_bytes
    torch.set_num_threads(1)
    try:
        one = activation_peak(loaded, "audio", 2).peak_bytes
    finally:
        torch.set_num_threads(threads)
    return {"modality": "audio", "batch": 2, "threads": threads, "peak_bytes": many, "one_thread_peak_bytes": one}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=2, help="trunk depth for the sweep (>= 2: see random_branch)")
    parser.add_argument("--batches", default="1,2,4")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--modalities", default="vision,audio,text")
    parser.add_argument("--depth-check", default="vision:bfloat16:1", help="MODALITY:DTYPE:BATCH, or 'none'")
    parser.add_argument("--gpu-memory-gb", type=float, default=24.0)
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    batches = [int(b) for b in args.batches.split(",")]
    modalities = [m for m in EXTRACTED_MODALITIES if m in args.modalities.split(",")]
    rows = [row for m in modalities for d in args.dtypes.split(",") for row in sweep(m, d, args.blocks, batches)]
    result: dict = {
        "machine": {"cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "python": platform.python_version()},
        "method": "torch.profiler memory events (profile_memory=True): the CPU allocator's own report of "
                  "every allocation and free, summed in time order; input tensor added (allocated before)",
        "model": "imagebind_huge, random init, one modality at a time, inference_mode",
        "cuda_bound": CUDA_BOUND,
        "measurements": rows,
        "per_item": per_item(rows),
        "max_abs_error_pct": {
            path: max(abs(r["error_pct"]) for r in rows if r["attention"] == path) for path in PATHS
        },
    }
    if args.depth_check != "none":
        modality, dtype_name, batch = args.depth_check.split(":")
        result["depth_check"] = depth_check(modality, dtype_name, int(batch), args.blocks)
    result["thread_check"] = thread_check(args.blocks)
    result["plan"] = {
        "gpu_memory_gb": args.gpu_memory_gb,
        "safety_margin": SAFETY_MARGIN,
        "16-bit": plan_batch_sizes(HUGE, list(EXTRACTED_MODALITIES), args.gpu_memory_gb, 2).as_dict(),
        "16-bit, math attention": plan_batch_sizes(
            HUGE, list(EXTRACTED_MODALITIES), args.gpu_memory_gb, 2, attention="math").as_dict(),
        "float32": plan_batch_sizes(HUGE, list(EXTRACTED_MODALITIES), args.gpu_memory_gb, 4).as_dict(),
    }
    result["seconds"] = round(time.perf_counter() - started, 1)
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
