"""The causal study: configs per mode, tables of the right shape with the right numbers, t-tests
against scipy, resuming, failures, Ray tasks, and the Ray job script."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from dgnode.command import run_command
from dgnode.options import ConfigError
from dgnode.errors import InputError
from dgnode.study import StudySpec, apply_mode, build_runs, model_config_path, run_study
from dgnode.study.cli import COMMANDS
from dgnode.study.stats import paired_test
from dgnode.training.config import load_train_config
from dgnode.training.rundir import RunDir

SUMMARY_COLUMNS = [
    "model", "mode", "runs", "failed", "weighted_f1_mean", "weighted_f1_std", "accuracy_mean", "accuracy_std",
    "f1_hap_mean", "f1_sad_mean", "f1_neu_mean", "f1_ang_mean", "f1_exc_mean", "f1_fru_mean",
]


def main(argv: list[str]) -> int:
    return run_command(COMMANDS, argv)


def model_config(name: str, **overrides):
    return load_train_config(None, {"model.name": name, **{f"model.{k}": v for k, v in overrides.items()}}).model


def test_modes_map_onto_each_model_family():
    assert apply_mode(model_config("dgode"), "causal").wf == 0
    assert apply_mode(model_config("dgode"), "offline").wf == -1
    assert apply_mode(model_config("corect", wf=3), "offline").wf == 3  # the config's own window
    assert apply_mode(model_config("corect", wf=0), "offline").wf == 5  # a causal file -> class default
    assert apply_mode(model_config("dgode", wf=0), "offline").wf == -1
    assert apply_mode(model_config("bigru"), "causal").causal is True
    assert apply_mode(model_config("bigru", causal=True), "offline").causal is False
    assert apply_mode(model_config("mlp"), "causal") == model_config("mlp")
    # A forward-only GRU accepts an odd width, the bidirectional one does not: the offline copy is re-validated.
    odd = apply_mode(model_config("bigru", causal=True, hidden=7), "causal")
    with pytest.raises(ConfigError, match="model 'bigru' in offline mode: hidden must be even"):
        apply_mode(odd, "offline")


def test_config_files_are_found_by_model_and_profile(repo_root, tmp_path):
    configs = repo_root / "configs"
    assert model_config_path(configs, "corect", "fast").name == "corect_fast.yaml"
    assert model_config_path(configs, "mlp", None).name == "baseline_mlp.yaml"
    assert model_config_path(configs, "mlp", "fast").name == "baseline_mlp_fast.yaml"
    assert model_config_path(configs, "mlp", "meld").name == "baseline_mlp.yaml"  # the generic config serves a profile it lacks
    with pytest.raises(InputError, match=r"no config for model 'gcn' \(tried gcn_nope.yaml, baseline_gcn_nope.yaml, gcn.yaml, baseline_gcn.yaml\)"):
        model_config_path(configs, "gcn", "nope")
    (tmp_path / "corect_only.yaml").write_text("model:\n  name: corect\n")
    assert model_config_path(tmp_path, "corect", None).name == "corect_only.yaml"
    for profile in ("fast", "meld"):
        (tmp_path / f"dgode_{profile}.yaml").write_text("model:\n  name: dgode\n")
    with pytest.raises(InputError, match=r"it has dgode_fast.yaml, dgode_meld.yaml: pick one with --profile fast\|meld"):
        model_config_path(tmp_path, "dgode", None)
    with pytest.raises(InputError, match="config directory not found"):
        model_config_path(tmp_path / "missing", "corect", None)


def test_a_profile_without_a_config_directory_is_refused(tmp_path, capsys):
    """It used to be ignored: every run then trained the registry's paper-size defaults."""
    with pytest.raises(ConfigError, match=r"profile 'fast' needs config_dir \(e.g. --config_dir configs\)"):
        StudySpec(store=str(tmp_path), models=["dgode"], out=str(tmp_path / "out"), profile="fast")
    assert run_command(COMMANDS, ["study", "--store", str(tmp_path), "--models", "[dgode]", "--out", str(tmp_path / "out"),
                        "--profile", "fast"]) == 2
    assert "needs config_dir" in capsys.readouterr().err


def test_spec_validation():
    with pytest.raises(ConfigError, match=r"modes must be a non-empty subset of \['offline', 'causal'\]"):
        StudySpec(store="s", models=["dgode"], out="o", modes=["online"])
    with pytest.raises(ConfigError, match="names model 'gcn', which is not in the study"):
        StudySpec(store="s", models=["dgode"], out="o", overrides={"gcn:model.hidden": 3})
    with pytest.raises(ConfigError, match="seeds must be >= 1"):
        StudySpec(store="s", models=["dgode"], out="o", seeds=0)
    with pytest.raises(ConfigError, match="models repeat a name"):
        StudySpec(store="s", models=["dgode", "dgode"], out="o")


def test_runs_get_mode_seed_store_and_per_model_overrides(repo_root, tmp_path):
    spec = StudySpec(store="S", models=["dgode", "corect"], out=str(tmp_path), seeds=2, first_seed=7,
                     config_dir=str(repo_root / "configs"), profile="fast",
                     overrides={"train.epochs": 1, "corect:model.hidden": 16})
    runs = build_runs(spec)
    assert [r.key for r in runs] == [(m, mode, s) for m in ("dgode", "corect") for mode in ("offline", "causal") for s in (7, 8)]
    by_key = {r.key: r.config for r in runs}
    assert by_key[("dgode", "offline", 7)].model.wf == -1 and by_key[("dgode", "causal", 8)].model.wf == 0
    assert by_key[("corect", "offline", 7)].model.wf == 5 and by_key[("corect", "causal", 7)].model.wf == 0
    assert by_key[("corect", "causal", 7)].model.hidden == 16 and by_key[("dgode", "causal", 7)].model.hidden == 64
    assert all(c.train.epochs == 1 and c.data.store == "S" and not c.report.plots for c in by_key.values())
    assert by_key[("dgode", "causal", 8)].train.seed == 8
    assert runs[0].run_dir == tmp_path.resolve() / "runs" / "dgode-offline-seed7"


def test_paired_test_matches_scipy_and_is_nan_when_undefined():
    a, b = [0.61, 0.64, 0.59, 0.66], [0.58, 0.60, 0.60, 0.61]
    expected = stats.ttest_rel(a, b)
    assert paired_test(a, b) == (pytest.approx(expected.statistic), pytest.approx(expected.pvalue))
    assert all(math.isnan(v) for v in paired_test([0.5], [0.4]))  # one pair
    assert all(math.isnan(v) for v in paired_test([0.5, 0.6], [0.4, 0.5]))  # constant difference


@pytest.mark.slow
def test_study_cli_writes_tables_with_the_right_shape_and_numbers(study_store, repo_root, tmp_path, capsys):
    out = tmp_path / "study"
    args = ["study", "--store", str(study_store), "--models", "[dgode,corect]", "--seeds", "2", "--out", str(out),
            "--config_dir", str(repo_root / "configs"), "--profile", "fast", "--runner", "local", "--quiet",
            "--overrides", "{train.epochs: 1, corect:model.hidden: 16, dgode:model.hidden: 16}"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "paired t-tests on weighted F1" in printed

    summary = pd.read_csv(out / "study.csv")
    runs = pd.read_csv(out / "study_runs.csv")
    tests = pd.read_csv(out / "study_tests.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert summary[["model", "mode"]].values.tolist() == [["dgode", "offline"], ["dgode", "causal"], ["corect", "offline"], ["corect", "causal"]]
    assert summary["runs"].tolist() == [2, 2, 2, 2] and summary["failed"].tolist() == [0, 0, 0, 0]
    assert len(runs) == 8 and set(runs["status"]) == {"trained"} and sorted(set(runs["seed"])) == [0, 1]
    for _, row in summary.iterrows():
        group = runs[(runs["model"] == row["model"]) & (runs["mode"] == row["mode"])]
        assert row["weighted_f1_mean"] == pytest.approx(group["weighted_f1"].mean(), abs=1e-12)
        assert row["weighted_f1_std"] == pytest.approx(group["weighted_f1"].std(ddof=1), abs=1e-12)
        assert row["accuracy_std"] == pytest.approx(group["accuracy"].std(ddof=1), abs=1e-12)
        assert row["f1_neu_mean"] == pytest.approx(group["f1_neu"].mean(), abs=1e-12)

    assert len(tests) == 8  # (1 model pair x 2 modes + 1 mode pair x 2 models) x 2 metrics
    assert tests[["comparison", "within", "a", "b"]].drop_duplicates().values.tolist() == [
        ["models", "offline", "dgode", "corect"], ["models", "causal", "dgode", "corect"],
        ["modes", "dgode", "offline", "causal"], ["modes", "corect", "offline", "causal"],
    ]
    for _, row in tests.iterrows():
        key_a = (row["a"], row["within"]) if row["comparison"] == "models" else (row["within"], row["a"])
        key_b = (row["b"], row["within"]) if row["comparison"] == "models" else (row["within"], row["b"])
        pick = lambda model, mode: runs[(runs["model"] == model) & (runs["mode"] == mode)].sort_values("seed")[row["metric"]].to_numpy()  # noqa: E731
        a, b = pick(*key_a), pick(*key_b)
        assert row["pairs"] == 2
        assert row["mean_diff"] == pytest.approx(float(np.mean(a - b)), abs=1e-12)
        expected = stats.ttest_rel(a, b) if not np.all(a - b == (a - b)[0]) else None
        if expected is None:
            assert math.isnan(row["p_value"])
        else:
            assert row["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)

    run_config = RunDir(out / "runs" / "corect-causal-seed1").read_config()
    assert (run_config.model.wf, run_config.model.hidden, run_config.train.seed) == (0, 16, 1)
    assert RunDir(out / "runs" / "corect-offline-seed0").read_config().model.wf == 5

    markdown = (out / "study.md").read_text()
    assert "**Synthetic features.**" in markdown
    assert "## Scores (mean ± std over seeds; per-class F1: mean)" in markdown
    assert markdown.count("| dgode | causal | 2 |") == 1 and "| corect | offline | 0 | trained |" in markdown
    assert "## Offline vs causal within each model" in markdown and "| corect | offline − causal | weighted f1 | 2 |" in markdown

    # Again: every run is reused, nothing retrained, the same tables.
    before = (out / "study.csv").read_text()
    assert main(args) == 0
    assert "none (all runs reused)" in capsys.readouterr().out
    assert (out / "study.csv").read_text() == before
    assert set(pd.read_csv(out / "study_runs.csv")["status"]) == {"reused"}

    # The Ray job script takes the same options (here: everything reused, no cluster needed).
    job = subprocess.run([sys.executable, str(repo_root / "jobs" / "study.py"), *args[1:]], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert job.returncode == 0, job.stderr[-2000:]
    assert (out / "study.csv").read_text() == before


def test_a_failing_run_is_recorded_and_the_others_go_on(study_store, tmp_path, capsys):
    out = tmp_path / "failing"
    args = ["study", "--store", str(study_store), "--models", "[mlp,dgode]", "--seeds", "2", "--out", str(out), "--runner", "local",
            "--quiet", "--overrides", "{train.epochs: 1, model.hidden: 8, dgode:train.nfe_cap: 1}"]
    assert main(args) == 1
    assert "failed dgode/offline/seed0: " in capsys.readouterr().out
    runs = pd.read_csv(out / "study_runs.csv", keep_default_na=False)
    assert runs["status"].tolist() == ["trained"] * 4 + ["failed"] * 4
    assert all("NFECapExceeded" in e and "more than 1 function evaluations" in e for e in runs["error"][4:])
    summary = pd.read_csv(out / "study.csv")
    assert summary["runs"].tolist() == [2, 2, 0, 0] and summary["failed"].tolist() == [0, 0, 2, 2]
    tests = pd.read_csv(out / "study_tests.csv")
    between = tests[tests["comparison"] == "models"]
    assert between["pairs"].tolist() == [0, 0, 0, 0] and between["p_value"].isna().all()
    mlp_modes = tests[(tests["comparison"] == "modes") & (tests["within"] == "mlp")]
    # A context-free model is the same in both modes: identical scores, an undefined test.
    assert mlp_modes["mean_diff"].tolist() == [0.0, 0.0] and mlp_modes["p_value"].isna().all()
    assert "## Failed runs" in (out / "study.md").read_text()


@pytest.mark.slow
def test_ray_tasks_give_the_same_runs_as_local(study_store, tmp_path, ray_local):
    common = dict(store=str(study_store), models=["mlp", "bigru"], seeds=1,
                  overrides={"train.epochs": 2, "model.hidden": 8, "train.batch_size": 2})
    on_ray = run_study(StudySpec(out=str(tmp_path / "ray"), runner="ray", **common), progress=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in each Ray task (cpus_per_run=1): same kernels, same bits
    try:
        local = run_study(StudySpec(out=str(tmp_path / "local"), runner="local", **common), progress=False)
    finally:
        torch.set_num_threads(threads)
    assert on_ray.runner == "ray" and local.runner == "local"
    assert [r.status for r in on_ray.records] == ["trained"] * 4
    # Deterministic training: each run scores exactly the same in a Ray worker as here.
    assert [(r.model, r.mode, r.seed, r.weighted_f1, r.accuracy) for r in on_ray.records] == [
        (r.model, r.mode, r.seed, r.weighted_f1, r.accuracy) for r in local.records
    ]
