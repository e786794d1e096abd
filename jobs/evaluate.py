"""Ray job: re-evaluate a finished training run, exactly `dgnode evaluate` (same options).

    ray job submit --working-dir . -- python jobs/evaluate.py --run runs/dgode --split test
"""

from _entry import run

if __name__ == "__main__":
    run("evaluate")
