"""Does the batch plan hold on a GPU? ImageBind-huge (random init) under a 24 GB cap, measured.

    python bench/gpu_check.py [--gpu-memory-gb 24] [--dtype float16] [--out gpu_check.json]
    python bench/gpu_check.py --dry-run        # the same steps on the CPU with the tiny model

On CUDA: the allocator is capped (``torch.cuda.set_per_process_memory_fraction``) at the budget
minus the CUDA context measured at start-up (``mem_get_info`` less what torch reserved), which
is what a card of that size leaves torch. Then per modality (text, audio, vision):

* ``batch 1``, the planned batch and twice it, one forward each after a warm-up: peak allocated
  and reserved bytes, seconds, and the cost model's prediction (weights + batch x item bytes,
  input counted once as it is here); twice the plan may run out of memory, which is recorded.
* ``throughput``: three planned chunks through :class:`~dgnode.embedding.actor.Embedder` (the
  extraction path: pinned memory, non-blocking copies on a side stream, the next chunk uploaded
  while the current one runs): utterances per second, peak memory, out-of-memory retries.
* ``plan_held``: the planned batch and the throughput run had no out-of-memory error and their
  peak reserved memory stayed within the cap.

Also recorded: the SDPA backend CUDA picks for each trunk's attention shapes, weights in
memory against the model's count, and the measured bytes per utterance (peak at the plan less
peak at 1, over plan - 1) against the model's. Steps that would start after ``--budget-s``
seconds are skipped and say so, so the whole check stays under 8 minutes (``gpu_check.sh``
also kills it at 470 s).

``--dry-run`` runs every step on the CPU with the tiny model and a small budget (memory from
the profiler's allocator events, :mod:`dgnode.embedding.probe`): a check of the script itself.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # dgnode from this checkout

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dgnode.embedding.actor import Embedder  # noqa: E402
from dgnode.embedding.memory import GB, activation_bytes_per_item, plan_batch_sizes, trunk_shapes  # noqa: E402
from dgnode.embedding.model import SPECS, build_imagebind  # noqa: E402
from dgnode.embedding.probe import allocation_peak, example_input  # noqa: E402
from dgnode.embedding.transfer import ChunkFeeder  # noqa: E402

THROUGHPUT_CHUNKS = 3
# Vision first: it is 96% of the compute and the batch that must fit; the others follow if time allows.
CHECK_ORDER = ("vision", "audio", "text")


class Clock:
    """Seconds since start, and whether a step may still start."""

    def __init__(self, budget_s: float) -> None:
        self.started = time.perf_counter()
        self.budget_s = budget_s

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def allows(self) -> bool:
        return self.elapsed() < self.budget_s


def host_batch(modality: str, batch: int, seed: int = 0) -> np.ndarray:
    """``batch`` copies of one random utterance, in the dtypes the CPU stage ships (values do not matter)."""
    one = example_input(modality, 1, torch.float32, seed).numpy()
    if modality == "vision":
        one = one.astype(np.float16)  # dgnode.media.utterance.VISION_TRANSPORT_DTYPE
    return np.repeat(one, batch, axis=0)


def sdpa_backends(loaded, element: torch.dtype) -> dict[str, str]:
    """The fused SDPA backend CUDA picks for each trunk's (batch 2) attention shapes."""
    from torch.nn.attention import SDPBackend

    names = {int(b): b.name for b in SDPBackend.__members__.values()}
    chosen = {}
    for modality, shape in trunk_shapes(loaded.spec).items():
        n, heads, head = 2 * shape.sequences, shape.heads, shape.width // shape.heads

        def mha_layout(length: int) -> torch.Tensor:  # the strides nn.MultiheadAttention hands to SDPA
            flat = torch.empty(length, n * heads, head, device=loaded.device, dtype=element)
            return flat.transpose(0, 1).view(n, heads, length, head)

        q, k = mha_layout(shape.tokens), mha_layout(shape.keys)
        mask = torch.zeros(1, 1, shape.tokens, shape.keys, device=loaded.device, dtype=element) if modality == "text" else None
        chosen[modality] = names.get(int(torch._fused_sdp_choice(q, k, k, mask)), "unknown")
    return chosen


class Meter:
    """Peak memory of a call above the weights: CUDA's allocator statistics, or the profiler's
    allocator events on the CPU (which count from the call's start: ``held`` bytes are added)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.weights = 0

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def measure(self, fn, held: int = 0) -> dict:
        self.sync()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        began = time.perf_counter()
        cpu_peak = None if self.cuda else allocation_peak(fn).peak_bytes
        if self.cuda:
            fn()
        self.sync()
        seconds = round(time.perf_counter() - began, 4)
        if not self.cuda:
            return {"above_weights_bytes": cpu_peak + held, "peak_allocated_bytes": self.weights + cpu_peak + held,
                    "peak_reserved_bytes": None, "seconds": seconds}
        allocated = int(torch.cuda.max_memory_allocated(self.device))
        return {"above_weights_bytes": allocated - self.weights, "peak_allocated_bytes": allocated,
                "peak_reserved_bytes": int(torch.cuda.max_memory_reserved(self.device)), "seconds": seconds}

    def release(self) -> None:
        if self.cuda:
            torch.cuda.empty_cache()


def forward_row(loaded, meter: Meter, modality: str, batch: int, clock: Clock, warm: bool, repeats: int = 1) -> dict:
    """``repeats`` forwards of ``batch`` utterances (after a warm-up when ``warm``; seconds are per
    forward); running out of memory is a result, not an error."""
    row: dict = {"batch": batch, "predicted_bytes": batch * activation_bytes_per_item(
        loaded.spec, modality, loaded.dtype.itemsize, input_copies=1)}
    if not clock.allows():
        return {**row, "skipped": "time budget"}
    inputs = host_batch(modality, batch)
    feeder = ChunkFeeder(loaded)
    tensor = None
    try:
        if warm:  # cuBLAS/cuDNN handles and kernels: not part of the measured call
            loaded.run(modality, feeder.start(inputs, range(batch)).wait())
        tensor = feeder.start(inputs, range(batch)).wait()
        row.update(meter.measure(lambda: [loaded.run(modality, tensor) for _ in range(repeats)], held=tensor.nbytes),
                   oom=False)
        row["seconds"] = round(row["seconds"] / repeats, 4)
        row["error_pct"] = round(100 * (row["predicted_bytes"] - row["above_weights_bytes"]) / row["above_weights_bytes"], 2)
        row["utterances_per_s"] = round(batch / row["seconds"], 2)
    except torch.OutOfMemoryError as error:
        row.update(oom=True, error=str(error).splitlines()[0][:200])
    finally:
        tensor = None
        meter.release()
    return row


def throughput_row(loaded, meter: Meter, modality: str, size: int, clock: Clock) -> dict:
    """Three planned chunks through the Embedder (the extraction path, next chunk uploaded ahead)."""
    if not clock.allows():
        return {"skipped": "time budget"}
    n = THROUGHPUT_CHUNKS * size
    batch = {"utt_id": np.array([f"u{i}" for i in range(n)]), modality: host_batch(modality, n)}
    embedder = Embedder(loaded, {m: size for m in loaded.modalities})
    result: dict = {}

    def run() -> None:
        _, stats = embedder.embed(batch)
        result["stats"] = stats

    row = meter.measure(run)
    stats = result["stats"]
    meter.release()
    return {**row, "utterances": n, "chunk": size, "utterances_per_s": round(n / row["seconds"], 2),
            "oom_retries": stats.oom_retries, "final_chunk": embedder.chunk_sizes[modality]}


def run_check(gpu_memory_gb: float, dtype_name: str, kind: str, device_name: str, budget_s: float,
              extra_batches: dict[str, list[int]] | None = None, repeats: int = 1,
              modalities: Sequence[str] = CHECK_ORDER, progress: Callable[[dict], None] | None = None) -> dict:
    """Every step of the module docstring; ``extra_batches`` adds batch sizes per modality (a sweep).

    ``progress`` gets the partial result after each modality (``"complete": false``), so a run
    killed at the time limit still leaves what it measured.
    """
    clock = Clock(budget_s)
    device = torch.device(device_name)
    dtype = getattr(torch, dtype_name)
    meter = Meter(device)
    result: dict = {"machine": {"python": platform.python_version(), "torch": torch.__version__},
                    "gpu_memory_gb": gpu_memory_gb, "dtype": dtype_name, "model": kind, "device": str(device)}
    if meter.cuda:
        torch.cuda.init()
        torch.empty(1, device=device)  # creates the context
        free, total = torch.cuda.mem_get_info(device)
        context = total - free - torch.cuda.memory_reserved(device)
        cap = gpu_memory_gb * GB - context
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total), device)
        result.update(gpu=torch.cuda.get_device_name(device), total_memory_bytes=int(total),
                      context_bytes=int(context), allocator_cap_bytes=int(cap))
    began = time.perf_counter()
    loaded = build_imagebind(kind, random_init=True, modalities=modalities, device=device, dtype=dtype)
    meter.sync()
    spec = SPECS[kind]
    plan = plan_batch_sizes(spec, list(modalities), gpu_memory_gb, dtype.itemsize)
    held = [*loaded.model.parameters(), *loaded.model.buffers()]
    meter.weights = torch.cuda.memory_allocated(device) if meter.cuda else sum(t.nbytes for t in held)
    result.update(build_s=round(time.perf_counter() - began, 2), weights_bytes=int(meter.weights),
                  weights_model_bytes=plan.weight_bytes, plan=plan.as_dict())
    if meter.cuda:
        result["sdpa_backend"] = sdpa_backends(loaded, dtype)
    per_modality = {}
    for modality in modalities:
        size = plan.sizes[modality]
        batches = sorted({1, size, 2 * size, *(extra_batches or {}).get(modality, [])})
        rows = [forward_row(loaded, meter, modality, b, clock, i == 0, repeats) for i, b in enumerate(batches)]
        planned = next(r for r in rows if r["batch"] == size)
        throughput = throughput_row(loaded, meter, modality, size, clock)
        cap = result.get("allocator_cap_bytes")
        within = [r.get("peak_reserved_bytes") is None or cap is None or r["peak_reserved_bytes"] <= cap
                  for r in (planned, throughput)]
        one = next(r for r in rows if r["batch"] == 1)
        measured_item = None
        if size > 1 and "above_weights_bytes" in planned and "above_weights_bytes" in one:
            measured_item = (planned["above_weights_bytes"] - one["above_weights_bytes"]) / (size - 1)
        per_modality[modality] = {
            "planned_batch": size,
            "plan_held": ("oom" in planned and not planned["oom"] and throughput.get("oom_retries") == 0
                          and all(within)),
            "twice_plan_oom": next(r.get("oom") for r in rows if r["batch"] == 2 * size),
            "item_bytes_model": activation_bytes_per_item(spec, modality, dtype.itemsize, input_copies=1),
            "item_bytes_measured": round(measured_item) if measured_item is not None else None,
            "rows": rows,
            "throughput": throughput,
        }
        result["modalities"] = per_modality
        if progress is not None:
            progress({**result, "complete": False, "seconds": round(clock.elapsed(), 1)})
    result["complete"] = True
    result["plan_held"] = all(m["plan_held"] for m in per_modality.values())
    result["seconds"] = round(clock.elapsed(), 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu-memory-gb", type=float, help="budget to emulate (default 24; 0.25 with --dry-run)")
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16"])
    parser.add_argument("--budget-s", type=float, default=400.0, help="start no step after this many seconds")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny model, float32: checks the script")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    def write(result: dict) -> None:
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    if args.dry_run:
        result = run_check(args.gpu_memory_gb or 0.25, "float32", "tiny", "cpu", args.budget_s, progress=write)
    elif not torch.cuda.is_available():
        print("gpu_check: no CUDA device (use --dry-run to check the script on the CPU)", file=sys.stderr)
        return 2
    else:
        result = run_check(args.gpu_memory_gb or 24.0, args.dtype, "huge", "cuda", args.budget_s, progress=write)
    write(result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
