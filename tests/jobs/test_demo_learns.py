"""`make demo` learns, and what it learns are the corpus's emotion cues.

The main job runs as a user runs it (``jobs/pipeline.py --demo``, its own local Ray, the tiny
random-init ImageBind) on the generated corpus, once with cues and once with ``--synth.cues
false`` (same dialogues, same labels, media that do not depend on them). Margins, from
measurement (2-core machine, seed 0; README "Demo output"): with cues DGODE 0.660 test weighted F1,
the context-free MLP 0.613, the majority class 0.000 (the train split's most frequent class is
rare in the test split); without cues DGODE 0.082, the MLP 0.219 (chance). The assertions leave
room for numerical drift between machines but fail without cues.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# DGODE must clear the majority class by this much, the MLP by the second, and DGODE the MLP.
OVER_MAJORITY = 0.40
MLP_OVER_MAJORITY = 0.35
# Library chatter the pipeline silences at its source (dgnode.reporting.quiet).
SILENCED = (
    "Configuration for experiment", "tensorboard", "A new study created", "Token authentication",
    "Creating initial MLflow database tables", "Saving pytorch model by Pickle", "Progress bars disabled",
    "Starting execution of Dataset", "Failed to fetch metrics", "SetuptoolsDeprecationWarning",
    "Downloading artifacts", "Successfully registered model", "Created version", "Editable installation",
)


def _demo(repo_root: Path, workdir: Path, *flags: str) -> tuple[dict, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS")}
    env["PYTHONPATH"] = str(repo_root)
    run = subprocess.run(
        [sys.executable, "jobs/pipeline.py", "--demo", "--workdir", str(workdir), "--progress", "false", "--json",
         *flags],
        cwd=repo_root, env=env, capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1]), run.stdout + run.stderr


def _margins(result: dict) -> list[str]:
    """What falls short of the margins (empty when the demo learned)."""
    dgode = result["test"]["weighted_f1"]
    mlp = result["baselines"]["mlp"]["weighted_f1"]
    majority = result["baselines"]["majority"]["weighted_f1"]
    problems = []
    if dgode < majority + OVER_MAJORITY:
        problems.append(f"DGODE {dgode:.3f} < majority {majority:.3f} + {OVER_MAJORITY}")
    if mlp < majority + MLP_OVER_MAJORITY:
        problems.append(f"MLP {mlp:.3f} < majority {majority:.3f} + {MLP_OVER_MAJORITY}")
    if dgode <= mlp:
        problems.append(f"DGODE {dgode:.3f} <= MLP {mlp:.3f}")
    return problems


@pytest.mark.slow
def test_the_demo_learns_the_cues_and_reads_the_conversation(repo_root, tmp_path):
    learned, output = _demo(repo_root, tmp_path / "cues")
    assert _margins(learned) == [], output[-4000:]
    assert learned["trials"] == 4 and learned["model_uri"]
    assert {"confusion (DGODE)", "confusion (MLP)", "per-class F1"} <= set(learned["plots"])
    assert all(Path(path).is_file() for path in learned["plots"].values())
    for text in SILENCED:
        assert text.lower() not in output.lower(), text
    for line in ("DGODE (best trial)", "context-free MLP", "majority class", "best trial ", "MLflow UI:", "plots:"):
        assert line in output, line

    blind, output = _demo(repo_root, tmp_path / "no-cues", "--synth.cues", "false")
    assert blind["stored"] == learned["stored"]  # the same corpus, but for the cues
    assert _margins(blind), f"the demo learned without cues: {blind['test']} {blind['baselines']}"
    assert "WITHOUT emotion cues" in output
