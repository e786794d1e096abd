"""Fault injection for extraction: SIGKILL ``dgnode extract`` at seeded random points, resume, count.

On a generated corpus (``--dialogs`` x ``--utterances``, tiny ImageBind, ``--engine process`` by
default), in the same run:

* ``baseline``: one uninterrupted ``dgnode extract`` (a subprocess, like every run here);
* ``trials``: ``--kills`` times, a fresh store, ``dgnode extract`` killed with SIGKILL (its whole
  process group) after a delay drawn uniformly from ``[0, baseline seconds)`` (seeded), then the
  same command run again to completion. Per trial: utterances stored when killed, **lost**
  (expected but not stored after the resume), **duplicated** (stored rows beyond one per
  utterance), stored rows without provenance, files left behind (temporaries, the lock), and the
  time of the killed run plus the resume against the baseline.

Prints JSON; exits 1 if any utterance was lost or duplicated, or a row lacks provenance.

    python bench/bench_faults.py [--kills 5] [--seed 0] [--dialogs 5] [--utterances 8] [--engine process|ray]
    python bench/bench_faults.py --kills 20        # the README's numbers
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.report import emit  # noqa: E402


def make_manifest(root: Path, dialogs: int, utterances: int) -> Path:
    from dgnode.corpus.scan import scan_corpus, write_scan
    from dgnode.corpus.synth import SynthConfig, synthesize_corpus

    synthesize_corpus(root / "raw", SynthConfig(seed=0, dialogs=dialogs, utterances_per_dialogue=(utterances, utterances),
                                                utterance_seconds=(0.8, 2.0)))
    return write_scan(scan_corpus(root / "raw"), root / "scan")["manifest"]


def extract_command(manifest: Path, store: Path, engine: str) -> list[str]:
    return [sys.executable, "-m", "dgnode.cli", "extract", "--manifest", str(manifest), "--store", str(store),
            "--model", "tiny", "--engine", engine, "--max_batch_size", "4", "--decode_batch_size", "2",
            "--progress", "false", "--json"]


def run_to_end(command: list[str], env: dict) -> tuple[float, dict]:
    began = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - began
    if done.returncode:
        raise SystemExit(f"extraction failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, json.loads(done.stdout)


def run_and_kill(command: list[str], env: dict, delay: float) -> tuple[float, int | None]:
    """Start ``command`` in its own process group, SIGKILL the group after ``delay`` seconds."""
    began = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        process.wait(timeout=delay)
        finished = process.returncode  # ended before the kill point
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        finished = None
    return time.perf_counter() - began, finished


def inspect(store: Path, expected: set[str]) -> dict:
    from dgnode.features.store import FeatureStore

    if not (store / "metadata.json").exists():
        return {"stored": 0, "rows": 0, "lost": len(expected), "duplicated": 0, "without_provenance": 0, "left_behind": []}
    opened = FeatureStore.open(store)
    loaded = opened.load() if opened.part_paths() else None
    ids = set(loaded.frame["utt_id"]) if loaded is not None else set()
    provenance = set(opened.read_provenance()["utt_id"])
    return {
        "stored": len(ids),
        "rows": len(opened),
        "lost": len(expected - ids),
        "duplicated": len(opened) - len(ids),
        "without_provenance": len(ids - provenance),
        "left_behind": sorted(str(p.relative_to(store)) for p in store.rglob(".*") if p.is_file()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=5, help="kill points (20 for the README's numbers)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dialogs", type=int, default=5)
    parser.add_argument("--utterances", type=int, default=8, help="utterances per dialogue (at least 8)")
    parser.add_argument("--engine", choices=("process", "ray"), default="process")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)

    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="dgnode-faults-") as work:
        work_dir = Path(work)
        manifest = make_manifest(work_dir, args.dialogs, args.utterances)
        baseline_s, baseline = run_to_end(extract_command(manifest, work_dir / "baseline", args.engine), env)
        from dgnode.features.store import FeatureStore

        expected = FeatureStore.open(work_dir / "baseline").stored_utt_ids()
        trials = []
        for index in range(args.kills):
            store = work_dir / f"trial{index}"
            command = extract_command(manifest, store, args.engine)
            delay = rng.uniform(0.0, baseline_s)
            killed_s, finished = run_and_kill(command, env, delay)
            at_kill = inspect(store, expected)
            resume_s, resumed = run_to_end(command, env)
            after = inspect(store, expected)
            trials.append({
                "kill_at_s": round(delay, 2), "ended_before_the_kill": finished is not None,
                "stored_when_killed": at_kill["stored"], "resumed_stored": resumed["stored"],
                "resumed_skipped": resumed["already_stored"], **{k: after[k] for k in (
                    "stored", "lost", "duplicated", "without_provenance", "left_behind")},
                "killed_run_s": round(killed_s, 2), "resume_s": round(resume_s, 2),
                "overhead_s": round(killed_s + resume_s - baseline_s, 2),
            })
            print(json.dumps({"trial": index, **trials[-1]}), file=sys.stderr)

    overheads = [t["overhead_s"] for t in trials]
    result = {
        "benchmark": "bench_faults",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "corpus": {"utterances": len(expected), "dialogs": args.dialogs, "engine": args.engine, "model": "tiny"},
        "seed": args.seed,
        "kills": args.kills,
        "baseline_s": round(baseline_s, 2),
        "baseline_stored": baseline["stored"],
        "lost_total": sum(t["lost"] for t in trials),
        "duplicated_total": sum(t["duplicated"] for t in trials),
        "without_provenance_total": sum(t["without_provenance"] for t in trials),
        "left_behind_total": sum(len(t["left_behind"]) for t in trials),
        "overhead_s": {"mean": round(statistics.mean(overheads), 2), "median": round(statistics.median(overheads), 2),
                       "max": round(max(overheads), 2)} if overheads else None,
        "overhead_ratio_mean": round(statistics.mean(o / baseline_s for o in overheads), 3) if overheads else None,
        "trials": trials,
    }
    emit(result, args.out)
    ok = result["lost_total"] == result["duplicated_total"] == result["without_provenance_total"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
