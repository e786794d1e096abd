"""``bench/gpu_check.py`` on the CPU (``--dry-run``): every step runs and the JSON says whether the plan held."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", BENCH / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_measures_the_plan_twice_it_and_the_throughput():
    result = _gpu_check().run_check(0.03, "float32", "tiny", "cpu", budget_s=300, modalities=("text", "audio"))
    json.dumps(result)  # what --out writes
    assert result["plan_held"] is True and result["device"] == "cpu"
    for modality, check in result["modalities"].items():
        size = check["planned_batch"]
        assert size == result["plan"]["sizes"][modality] > 1
        assert [row["batch"] for row in check["rows"]] == [1, size, 2 * size]
        for row in check["rows"]:
            assert row["oom"] is False and row["above_weights_bytes"] > 0
            # tiny has one block, so its measured peak is at most the (two-block) prediction
            assert row["above_weights_bytes"] <= row["predicted_bytes"]
        assert check["throughput"]["utterances"] == 3 * size and check["throughput"]["oom_retries"] == 0
        assert check["item_bytes_measured"] > 0


def test_steps_past_the_time_budget_are_skipped_not_run():
    result = _gpu_check().run_check(0.03, "float32", "tiny", "cpu", budget_s=0, modalities=("text",))
    check = result["modalities"]["text"]
    assert all(row.get("skipped") == "time budget" for row in check["rows"])
    assert check["throughput"] == {"skipped": "time budget"} and result["plan_held"] is False


def test_the_shell_script_parses():
    assert subprocess.run(["bash", "-n", str(BENCH / "gpu_check.sh")], check=False).returncode == 0
