"""The batch planner: within the budget by its own prediction, monotone in it, and true to torch's
allocator accounting on the tiny architecture; ``dgnode extract --plan`` needs no model."""

from __future__ import annotations

import json

import pytest
import torch

from dgnode.command import run_command
from dgnode.embedding.cli import COMMANDS
from dgnode.embedding.memory import (
    GB,
    SAFETY_MARGIN,
    activation_bytes_per_item,
    plan_batch_sizes,
)
from dgnode.embedding.model import EXTRACTED_MODALITIES, HUGE, TINY, random_branch
from dgnode.embedding.probe import activation_peak

BUDGETS_GB = (6.0, 7.0, 8.0, 12.0, 16.0, 24.0, 40.0, 80.0)


@pytest.mark.parametrize("element_bytes", [2, 4])
@pytest.mark.parametrize("attention", ["fused", "math"])
def test_planned_batches_fit_the_budget_and_grow_with_it(element_bytes, attention):
    previous = dict.fromkeys(EXTRACTED_MODALITIES, 0)
    for budget_gb in BUDGETS_GB:
        plan = plan_batch_sizes(HUGE, EXTRACTED_MODALITIES, budget_gb, element_bytes, attention=attention)
        usable = budget_gb * GB * (1 - SAFETY_MARGIN)
        assert plan.margin_bytes == int(SAFETY_MARGIN * budget_gb * GB)
        for modality, size in plan.sizes.items():
            assert plan.predicted_peak_bytes(modality, size) <= usable  # never above the budget
            assert plan.predicted_peak_bytes(modality, size + 1) > usable  # and as large as fits
            assert size >= previous[modality]  # monotone in the budget
            previous[modality] = size
    assert previous["text"] > previous["audio"] > previous["vision"] >= 1


def test_the_cap_and_a_budget_below_the_weights():
    assert plan_batch_sizes(HUGE, ["vision"], 80, max_batch=32).sizes == {"vision": 32}
    assert plan_batch_sizes(HUGE, ["vision"], 1.5).sizes == {"vision": 1}  # at least one; OOM halving does the rest
    with pytest.raises(ValueError, match="does not hold the weights"):
        plan_batch_sizes(HUGE, EXTRACTED_MODALITIES, 2.0)
    with pytest.raises(ValueError, match="margin"):
        plan_batch_sizes(HUGE, ["text"], 24, margin=1.0)


@pytest.mark.parametrize("modality", EXTRACTED_MODALITIES)
def test_the_cost_model_matches_torchs_allocator_on_the_tiny_architecture(modality):
    # Two blocks: from the second one on, a block's input is no longer the trunk's input (see memory.py).
    loaded = random_branch("tiny", modality, num_blocks=2, dtype=torch.float32)
    for attention, path in (("default", "fused"), ("math", "math")):
        measured = [activation_peak(loaded, modality, batch, attention).peak_bytes for batch in (1, 3)]
        predicted = [b * activation_bytes_per_item(TINY, modality, 4, path, input_copies=1) for b in (1, 3)]
        assert abs(measured[1] - 3 * measured[0]) <= 1e-3 * measured[1]  # no fixed part: it all scales with the batch
        for got, want in zip(measured, predicted):
            assert abs(want - got) <= 0.15 * got, (modality, attention, got, want)


def test_extract_plan_prints_the_plan_without_a_model_or_a_manifest(monkeypatch, capsys):
    def no_model(*args, **kwargs):
        raise AssertionError("--plan must not build a model")

    monkeypatch.setattr("dgnode.embedding.model.build_imagebind", no_model)
    assert run_command(COMMANDS, ["extract", "--plan", "--json", "--gpu_memory_gb", "16", "--dtype", "bfloat16"]) == 0
    shown = json.loads(capsys.readouterr().out)
    plan = plan_batch_sizes(HUGE, EXTRACTED_MODALITIES, 16, 2)
    assert shown["sizes"] == plan.sizes and shown["dtype"] == "bfloat16"
    assert shown["run_sizes"] == {m: min(n, 32) for m, n in plan.sizes.items()}
    assert all(shown["math_attention_sizes"][m] <= n for m, n in plan.sizes.items())
    assert run_command(COMMANDS, ["extract", "--plan", "--device", "cpu", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["element_bytes"] == 4  # float32 on the CPU
    assert run_command(COMMANDS, ["extract", "--plan"]) == 0
    table = capsys.readouterr().out
    assert "batch plan: huge, float16, 24 GB" in table and "vision" in table
