"""Every `ray job submit` entrypoint starts from a plain checkout and documents its options."""

from __future__ import annotations

import subprocess
import sys

import pytest

JOBS = {
    "extract.py": "--manifest",
    "train.py": "--num_workers",
    "tune.py": "--space",
    "evaluate.py": "--run",
    "study.py": "--models",
    "pipeline.py": "--corpus_root",
}


@pytest.mark.parametrize(("job", "option"), sorted(JOBS.items()))
def test_job_help_names_its_options(repo_root, job, option):
    result = subprocess.run([sys.executable, f"jobs/{job}", "--help"], cwd=repo_root,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert option in result.stdout
