"""Fault injection for tuning: SIGKILL ``dgnode tune`` at seeded random points, resume, count.

On a tiny synthetic feature store (12/4/4 IEMOCAP dialogues cut to 12 utterances), one local Ray
shared by every run (so a kill costs the search, not a Ray start) and a local MLflow store, in the
same run:

* ``baseline``: one uninterrupted search (``--trials`` x ``--epochs``);
* ``kills``: ``--kills`` times, a fresh search directory and experiment; the search's driver (its
  whole process group) SIGKILLed after a delay drawn uniformly from ``[0, baseline seconds)``
  (seeded), then ``dgnode tune --resume`` until it exits 0 (at most ``--max-resumes``; killed
  before the search was recorded, the same command again, as its error line says). Per kill:
  trials **lost** (fewer finished trials than asked), trials **duplicated** (a trial id with more
  than one MLflow trial run, or more trial runs than trials), MLflow runs left RUNNING or KILLED,
  final test runs and model versions registered (each must be exactly 1), and the time of the killed run plus the resumes
  against the baseline.

Prints JSON; exits 1 if any trial was lost or duplicated, a run was left RUNNING/KILLED, or the
best model was not tested and registered exactly once.

    python bench/bench_faults_search.py [--kills 5] [--seed 0] [--trials 4] [--epochs 2]
    python bench/bench_faults_search.py --kills 20        # the README's numbers
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

_MODEL = ("--model.hidden=16", "--model.dropout=0.0", "--model.ode.method=rk4", "--model.ode.step_size=0.5",
          "--train.batch_size=4", "--train.patience=0", "--report.plots=false", "--report.tsne_points=0")


def make_store(root: Path) -> Path:
    from dgnode.features.synth import synthesize_features

    source = json.loads((REPO / "dgnode" / "data" / "iemocap_structure.json").read_text())
    keep = {"train": source["splits"]["train"][:12], "valid": source["splits"]["valid"][:4],
            "test": source["splits"]["test"][:4]}
    dialogues = {d: {k: v[:12] for k, v in source["dialogues"][d].items()} for ids in keep.values() for d in ids}
    structure = root / "structure.json"
    structure.write_text(json.dumps({"dataset": "iemocap-tiny", "labels": source["labels"], "note": "bench subset",
                                     "splits": keep, "dialogues": dialogues}))
    synthesize_features(structure, root / "store", {"text": 16, "audio": 12, "vision": 8}, seed=0)
    return root / "store"


def tune_command(out: Path, tracking: str, store: Path | None = None, space: Path | None = None,
                 experiment: str = "", trials: int = 4, epochs: int = 2) -> list[str]:
    base = [sys.executable, "-m", "dgnode.cli", "tune", "--out", str(out), "--tracking_uri", tracking,
            "--progress=false"]
    if store is None:
        return [*base, "--resume"]
    return [*base, "--data.store", str(store), "--space", str(space), "--trials", str(trials), "--epochs",
            str(epochs), "--grace_period", str(epochs), "--max_concurrent", "1", "--seed", "0",
            "--experiment", experiment, *_MODEL]


def run(command: list[str], env: dict, kill_after: float | None = None) -> tuple[float, int | None]:
    """Run ``command`` in its own process group; SIGKILL the group after ``kill_after`` seconds.
    Returns (seconds, exit code or None when killed)."""
    began = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=kill_after if kill_after is not None else 900)
        code = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        code = None
        stderr = ""
    if code not in (None, 0, 130) and kill_after is None:
        print(stderr[-2000:], file=sys.stderr)
    return time.perf_counter() - began, code


def inspect(tracking: str, experiment: str, trials: int) -> dict:
    from mlflow import MlflowClient

    client = MlflowClient(tracking)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id]) if found else []
    trial_runs = [r for r in runs if r.data.tags.get("dgnode.run_kind") == "trial"]
    finals = [r for r in runs if r.data.tags.get("dgnode.run_kind") == "final"]
    ids = [r.data.tags["dgnode.trial_id"] for r in trial_runs]
    finished = [r for r in trial_runs if r.info.status == "FINISHED"]
    versions = client.search_model_versions(f"name='{experiment}'") if found else []
    return {
        "finished_trials": len({r.data.tags["dgnode.trial_id"] for r in finished}),
        "lost": max(0, trials - len({r.data.tags["dgnode.trial_id"] for r in finished})),
        "duplicated": (len(ids) - len(set(ids))) + max(0, len(set(ids)) - trials),
        "left_running_or_killed": sum(r.info.status in ("RUNNING", "KILLED") for r in runs),
        "tested": len(finals),
        "model_versions": len(versions),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=5, help="kill points (20 for the README's numbers)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-resumes", type=int, default=5)
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)

    import ray

    from dgnode.tuning.search import SEARCH_RECORD

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="dgnode-faults-search-") as work:
        work_dir = Path(work)
        store = make_store(work_dir)
        space = work_dir / "space.yaml"
        space.write_text("params:\n  optim.lr: {loguniform: [1.0e-3, 3.0e-2]}\n")
        tracking = f"sqlite:///{work_dir / 'mlflow.db'}"
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0",
               "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
        try:
            baseline_s, code = run(tune_command(work_dir / "baseline", tracking, store, space, "baseline",
                                                args.trials, args.epochs), env)
            if code != 0:
                raise SystemExit(f"the baseline search failed ({code})")
            baseline = inspect(tracking, "baseline", args.trials)
            kills = []
            for index in range(args.kills):
                out, experiment = work_dir / f"kill{index}", f"kill{index}"
                delay = rng.uniform(0.0, baseline_s)
                killed_s, code = run(tune_command(out, tracking, store, space, experiment, args.trials, args.epochs),
                                     env, kill_after=delay)
                resumes, resume_s = 0, 0.0
                while code != 0 and resumes < args.max_resumes:
                    # What the error line tells a user: killed before the search was recorded,
                    # run the same command again; after, --resume.
                    again = (tune_command(out, tracking) if (out / SEARCH_RECORD).exists() else
                             tune_command(out, tracking, store, space, experiment, args.trials, args.epochs))
                    seconds, code = run(again, env)
                    resumes, resume_s = resumes + 1, resume_s + seconds
                after = inspect(tracking, experiment, args.trials)
                kills.append({"kill_at_s": round(delay, 2), "ended_before_the_kill": resumes == 0,
                              "resumes": resumes, "completed": code == 0, **after,
                              "killed_run_s": round(killed_s, 2), "resume_s": round(resume_s, 2),
                              "overhead_s": round(killed_s + resume_s - baseline_s, 2)})
                print(json.dumps({"kill": index, **kills[-1]}), file=sys.stderr)
        finally:
            ray.shutdown()

    overheads = [k["overhead_s"] for k in kills]
    result = {
        "benchmark": "bench_faults_search",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "search": {"trials": args.trials, "epochs": args.epochs, "store": "tiny synthetic (20 dialogues)"},
        "seed": args.seed,
        "kills": args.kills,
        "baseline_s": round(baseline_s, 2),
        "baseline": baseline,
        "not_completed": sum(not k["completed"] for k in kills),
        "lost_total": sum(k["lost"] for k in kills),
        "duplicated_total": sum(k["duplicated"] for k in kills),
        "left_running_or_killed_total": sum(k["left_running_or_killed"] for k in kills),
        "not_registered_once": sum(k["model_versions"] != 1 for k in kills),
        "not_tested_once": sum(k["tested"] != 1 for k in kills),
        "overhead_s": {"mean": round(statistics.mean(overheads), 2), "median": round(statistics.median(overheads), 2),
                       "max": round(max(overheads), 2)} if overheads else None,
        "overhead_ratio_mean": round(statistics.mean(o / baseline_s for o in overheads), 3) if overheads else None,
        "kills_detail": kills,
    }
    emit(result, args.out)
    bad = (result["not_completed"] + result["lost_total"] + result["duplicated_total"]
           + result["left_running_or_killed_total"] + result["not_registered_once"] + result["not_tested_once"])
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
