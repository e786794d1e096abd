"""ASHA against running every trial to the end, on the same sampled configurations.

N configurations are drawn once from a search space with a seeded random sampler; two Tune runs
then train exactly that list (a grid over the list index): one under ``ASHAScheduler`` on
``valid_wf1`` per epoch, one with FIFO (every trial runs all its epochs). Trials are
:func:`dgnode.tuning.trainable.single_process_trial`, the trial function of ``dgnode tune``;
training is seeded and deterministic, so a configuration's learning curve is the same in both
runs and the only difference is where ASHA cuts it.

ASHA is run once per grace period (``--grace-periods``): the first rung decides how much an
early learning curve is trusted. Printed JSON: epochs trained by each run, best valid weighted F1
each found (and which configuration), wall time, failed trials, and the ratios ASHA / full (the
baseline, measured in the same run).

    .venv/bin/python bench/bench_asha.py --trials 12 --epochs 8 --grace-periods 1,2,4
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def sample_configurations(space, count: int, seed: int) -> list[dict]:
    """``count`` configurations drawn independently (Optuna's seeded RandomSampler)."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = OptunaSearch.convert_search_space(space.tune_param_space())
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed), direction="maximize")
    return [study.ask(distributions).params for _ in range(count)]


def indexed_trial(config: dict, *, configurations: list[dict], **kwargs) -> None:
    from dgnode.tuning.trainable import single_process_trial

    single_process_trial(configurations[config["index"]], **kwargs)


def run(scheduler_name: str, configurations, data, base_config, space, epochs: int, concurrency: int, storage: str,
        grace_period: int = 1, reduction_factor: float = 2.0) -> dict:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    scheduler = (ASHAScheduler(metric="valid_wf1", mode="max", time_attr="training_iteration", max_t=epochs,
                               grace_period=grace_period, reduction_factor=reduction_factor)
                 if scheduler_name.startswith("asha") else FIFOScheduler())
    trainable = tune.with_parameters(indexed_trial, configurations=configurations, data=data, base_config=base_config,
                                     space=space, epochs=epochs)
    started = time.perf_counter()
    results = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"index": tune.grid_search(list(range(len(configurations))))},
        tune_config=tune.TuneConfig(scheduler=scheduler, max_concurrent_trials=concurrency, reuse_actors=True),
        run_config=tune.RunConfig(name=scheduler_name, storage_path=storage, verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=0)),
    ).fit()
    wall = time.perf_counter() - started
    per_trial = {}
    for result in results:
        index = result.config["index"]
        metrics = result.metrics or {}
        per_trial[index] = {
            "epochs": int(metrics.get("epoch", -1)) + 1,
            "best_valid_wf1": metrics.get("best_valid_wf1"),
            "failed": result.error is not None,
        }
    scored = {i: t for i, t in per_trial.items() if not t["failed"] and t["best_valid_wf1"] is not None}
    best_index = max(scored, key=lambda i: scored[i]["best_valid_wf1"]) if scored else None
    return {
        "epochs": sum(t["epochs"] for t in per_trial.values()),
        "best_valid_wf1": scored[best_index]["best_valid_wf1"] if best_index is not None else None,
        "best_config_index": best_index,
        "stopped_early": sum(1 for t in per_trial.values() if not t["failed"] and t["epochs"] < epochs),
        "failed": sum(t["failed"] for t in per_trial.values()),
        "wall_s": round(wall, 2),
        "per_trial": {str(i): per_trial[i] for i in sorted(per_trial)},
    }


def make_store(root: Path, seed: int) -> Path:
    """A synthetic store over 40/10/10 IEMOCAP dialogues cut to 20 utterances (dims 32/24/16)."""
    from dgnode.features.synth import synthesize_features

    source = json.loads((REPO / "dgnode" / "data" / "iemocap_structure.json").read_text())
    keep = {"train": source["splits"]["train"][:40], "valid": source["splits"]["valid"][:10], "test": source["splits"]["test"][:10]}
    dialogues = {d: {k: v[:20] for k, v in source["dialogues"][d].items()} for ids in keep.values() for d in ids}
    structure = root / "structure.json"
    structure.write_text(json.dumps({"dataset": "iemocap-bench", "labels": source["labels"], "note": "bench subset",
                                     "splits": keep, "dialogues": dialogues}))
    synthesize_features(structure, root / "store", {"text": 32, "audio": 24, "vision": 16}, seed=seed)
    return root / "store"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grace-periods", default="1,2,4", help="ASHA grace periods to compare, comma-separated")
    parser.add_argument("--reduction-factor", type=float, default=2.0)
    parser.add_argument("--space", default=str(REPO / "configs" / "search_space_tiny.yaml"))
    parser.add_argument("--store", default=None, help="feature store (default: a synthetic one in a temporary directory)")
    args = parser.parse_args()

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import ray

    from dgnode.options import replace_dotted
    from dgnode.features.dataset import load_conversations
    from dgnode.training.config import load_train_config
    from dgnode.tuning.space import load_search_space

    with tempfile.TemporaryDirectory(prefix="bench-asha-") as scratch:
        store = Path(args.store) if args.store else make_store(Path(scratch), args.seed)
        base_config = load_train_config(None, {"data.store": str(store), "train.epochs": args.epochs})
        space = load_search_space(args.space, base_config)
        base_config = replace_dotted(base_config, space.fixed)
        data = load_conversations(store, base_config.data.modalities, base_config.data.normalise)
        configurations = sample_configurations(space, args.trials, args.seed)

        ray.init(address="local", num_cpus=max(args.concurrency, 1), include_dashboard=False, log_to_driver=False)
        try:
            # Tune prints its experiment banner on stdout: keep stdout for the JSON report.
            with contextlib.redirect_stdout(sys.stderr):
                full = run("full", configurations, data, base_config, space, args.epochs, args.concurrency, scratch)
                ashas = {
                    grace: run(f"asha-grace{grace}", configurations, data, base_config, space, args.epochs,
                               args.concurrency, scratch, grace_period=grace, reduction_factor=args.reduction_factor)
                    for grace in [int(g) for g in args.grace_periods.split(",")]
                }
        finally:
            ray.shutdown()

    def versus_full(asha: dict) -> dict:
        summary = {k: v for k, v in asha.items() if k != "per_trial"}
        summary["epoch_ratio_asha_over_full"] = round(asha["epochs"] / full["epochs"], 4) if full["epochs"] else None
        summary["wall_ratio_asha_over_full"] = round(asha["wall_s"] / full["wall_s"], 4) if full["wall_s"] else None
        summary["best_wf1_gap_full_minus_asha"] = (
            round(full["best_valid_wf1"] - asha["best_valid_wf1"], 6)
            if full["best_valid_wf1"] is not None and asha["best_valid_wf1"] is not None else None)
        summary["same_best_config"] = full["best_config_index"] == asha["best_config_index"]
        return summary

    space_path = Path(args.space).resolve()
    report = {
        "benchmark": "asha_vs_full",
        "trials": args.trials,
        "epochs_per_trial": args.epochs,
        "concurrency": args.concurrency,
        "seed": args.seed,
        "reduction_factor": args.reduction_factor,
        "space": str(space_path.relative_to(REPO)) if space_path.is_relative_to(REPO) else str(space_path),
        "full": {k: v for k, v in full.items() if k != "per_trial"},
        "asha": {f"grace_{grace}": versus_full(asha) for grace, asha in ashas.items()},
        "per_trial": {"full": full["per_trial"], **{f"asha_grace_{g}": a["per_trial"] for g, a in ashas.items()}},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
