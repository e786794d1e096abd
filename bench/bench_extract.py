"""Benchmark of ImageBind extraction: the Ray Data pipeline, segment decoding, and the GPU batch plan.

CPU part (always; baselines measured in the same run, on the same synthetic corpus):

* ``pipeline``: the tiny-model extraction through Ray Data (``run_extraction``, Ray already
  started) vs the plain single-process loop over the same utterances (``engine="process"``):
  seconds, utterances/s, ratio. ``ray_init_s`` is reported apart.
* ``decode``: one utterance's video input by segment decoding (10 frames) vs decoding the whole
  dialogue and cutting: seconds per utterance and for all utterances of the dialogue, ratios;
  peak memory of each (fresh subprocesses, ``bench/memprobe.py``).
* ``memory``: peak memory of decoding one segment from a 5-minute dialogue vs a 10-second one
  (median of ``--probe-runs`` subprocesses each); the ratio must stay within 20%.

GPU part (``--gpu``): ``bench/gpu_check.py`` (ImageBind-huge with random weights in float16, the
allocator capped at ``--gpu-memory-gb`` less the CUDA context; the planned batch, twice it and
the extraction path's throughput) plus a sweep of batch sizes per modality: peak allocated and
reserved memory against the cost model's prediction, utterances/s. Without CUDA: ``"gpu": null``.

    python bench/bench_extract.py [--dialogs 5] [--gpu] [--gpu-memory-gb 24] [--out result.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.report import emit  # noqa: E402

import numpy as np  # noqa: E402

from bench.memprobe import probe  # noqa: E402
from dgnode.corpus import synth_media  # noqa: E402


# -- corpus ----------------------------------------------------------------------------------
def make_corpus(root: Path, dialogs: int) -> Path:
    from dgnode.corpus.scan import scan_corpus, write_scan
    from dgnode.corpus.synth import SynthConfig, synthesize_corpus

    synthesize_corpus(root / "raw", SynthConfig(seed=0, dialogs=dialogs, utterances_per_dialogue=(8, 8)))
    return write_scan(scan_corpus(root / "raw"), root / "scan")["manifest"]


def write_dialogue(path: Path, seconds: float) -> Path:
    samples = int(round(seconds * synth_media.SAMPLE_RATE))
    synth_media.write_dialogue_avi(path, np.zeros((samples, 2), np.int16))
    return path


# -- CPU: pipeline ---------------------------------------------------------------------------
def bench_pipeline(manifest: Path, work: Path, max_batch_size: int) -> dict:
    import ray

    from dgnode.embedding.config import ExtractConfig
    from dgnode.embedding.pipeline import run_extraction

    def config(store: str) -> ExtractConfig:
        return ExtractConfig(manifest=str(manifest), store=str(work / store), model="tiny",
                             max_batch_size=max_batch_size, progress=False)

    began = time.perf_counter()
    plain = run_extraction(config("plain"), engine="process")
    plain_s = time.perf_counter() - began

    began = time.perf_counter()
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    ray_init_s = time.perf_counter() - began
    try:
        began = time.perf_counter()
        distributed = run_extraction(config("ray"), engine="ray")
        ray_s = time.perf_counter() - began
        cpus = int(ray.cluster_resources().get("CPU", 0))
    finally:
        ray.shutdown()
    utterances = plain.stored + plain.failed
    return {
        "utterances": utterances,
        "ray_cpus": cpus,
        "plain_loop_s": round(plain_s, 3),
        "ray_data_s": round(ray_s, 3),
        "ray_init_s": round(ray_init_s, 3),
        "plain_utt_per_s": round(utterances / plain_s, 3),
        "ray_utt_per_s": round((distributed.stored + distributed.failed) / ray_s, 3),
        "speedup_ray_over_plain": round(plain_s / ray_s, 3),
        "plain_stage_seconds": plain.stage_seconds,
        "ray_stage_seconds": distributed.stage_seconds,
        "batch_plan": distributed.batch_plan,
        "stored": [plain.stored, distributed.stored],
    }


# -- CPU: segment vs whole-dialogue decoding -------------------------------------------------
def bench_decode(work: Path, seconds: float, utterances: int, probe_runs: int) -> dict:
    from bench.memprobe import decode_whole
    from dgnode.media.video import VideoSource, read_video_segment

    video = str(write_dialogue(work / "Ses01F_impro09.avi", seconds))
    warmup = str(write_dialogue(work / "Ses01F_impro08.avi", 2.0))
    spans = [(start, start + 2.5) for start in np.linspace(0.5, seconds - 3.0, utterances)]
    read_video_segment(warmup, 0.0, 1.0, "left")  # imports and code pages out of the timings

    began = time.perf_counter()
    source = VideoSource(video)
    for start, end in spans:
        read_video_segment(source, start, end, "left")
    segments_s = time.perf_counter() - began

    began = time.perf_counter()
    read_video_segment(video, *spans[len(spans) // 2], "left")
    one_segment_s = time.perf_counter() - began

    began = time.perf_counter()
    frames = decode_whole(video)
    whole_s = time.perf_counter() - began

    segment_memory = statistics.median(
        probe(video, *spans[len(spans) // 2], warmup=warmup)["delta_bytes"] for _ in range(probe_runs))
    whole_memory = statistics.median(
        probe(video, 0.0, 1.0, warmup=warmup, whole=True)["delta_bytes"] for _ in range(probe_runs))
    return {
        "dialogue_seconds": seconds,
        "dialogue_frames": frames,
        "utterances": utterances,
        "one_segment_s": round(one_segment_s, 4),
        "whole_dialogue_decode_s": round(whole_s, 4),
        "ratio_whole_over_one_segment": round(whole_s / one_segment_s, 2),
        "all_segments_s": round(segments_s, 4),
        "ratio_whole_over_all_segments": round(whole_s / segments_s, 3),
        "segment_decode_delta_bytes": int(segment_memory),
        "whole_decode_delta_bytes": int(whole_memory),
        "memory_ratio_whole_over_segment": round(whole_memory / max(segment_memory, 1), 2),
    }


def bench_memory(work: Path, probe_runs: int) -> dict:
    long = str(write_dialogue(work / "Ses01F_impro07.avi", 300.0))
    short = str(write_dialogue(work / "Ses01F_impro06.avi", 10.0))
    warmup = str(write_dialogue(work / "Ses01F_impro05.avi", 2.0))
    long_runs = [probe(long, 244.0, 247.5, warmup=warmup) for _ in range(probe_runs)]
    short_runs = [probe(short, 4.0, 7.5, warmup=warmup) for _ in range(probe_runs)]
    long_peak = statistics.median(r["peak_rss_bytes"] for r in long_runs)
    short_peak = statistics.median(r["peak_rss_bytes"] for r in short_runs)
    ratio = long_peak / short_peak
    return {
        "runs": probe_runs,
        "five_minute_peak_rss_bytes": int(long_peak),
        "ten_second_peak_rss_bytes": int(short_peak),
        "five_minute_decode_delta_bytes": int(statistics.median(r["delta_bytes"] for r in long_runs)),
        "ten_second_decode_delta_bytes": int(statistics.median(r["delta_bytes"] for r in short_runs)),
        "ratio_five_minute_over_ten_second": round(ratio, 3),
        "within_20_percent": bool(1 / 1.2 <= ratio <= 1.2),
    }


# -- GPU -------------------------------------------------------------------------------------
GPU_BATCHES = {
    "vision": [1, 2, 4, 8, 16, 32, 48, 64, 96, 128],
    "audio": [1, 8, 32, 128, 256, 512, 1024],
    "text": [1, 32, 128, 512, 1024, 2048],
}


def bench_gpu(gpu_memory_gb: float, repeats: int) -> dict | None:
    """``bench/gpu_check.py`` (plan, twice the plan, throughput) plus a sweep of batch sizes."""
    import torch

    if not torch.cuda.is_available():
        return None
    from bench.gpu_check import run_check

    return run_check(gpu_memory_gb, "float16", "huge", "cuda", budget_s=3600, extra_batches=GPU_BATCHES, repeats=repeats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dialogs", type=int, default=5, help="synthetic dialogues (8 utterances each; >= 5)")
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--decode-dialogue-seconds", type=float, default=20.0)
    parser.add_argument("--decode-utterances", type=int, default=8)
    parser.add_argument("--probe-runs", type=int, default=3)
    parser.add_argument("--skip-cpu", action="store_true", help="only the GPU part")
    parser.add_argument("--gpu", action="store_true", help="measure ImageBind-huge on CUDA")
    parser.add_argument("--gpu-memory-gb", type=float, default=24.0)
    parser.add_argument("--gpu-repeats", type=int, default=3)
    parser.add_argument("--dir", help="work directory (default: a temporary one)")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    result: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }
    with tempfile.TemporaryDirectory(prefix="bench_extract_", dir=args.dir) as tmp:
        work = Path(tmp)
        if not args.skip_cpu:
            manifest = make_corpus(work / "corpus", args.dialogs)
            result["pipeline"] = bench_pipeline(manifest, work, args.max_batch_size)
            result["decode"] = bench_decode(work, args.decode_dialogue_seconds, args.decode_utterances, args.probe_runs)
            result["memory"] = bench_memory(work, args.probe_runs)
        result["gpu"] = bench_gpu(args.gpu_memory_gb, args.gpu_repeats) if args.gpu else None
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
