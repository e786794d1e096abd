"""Ray job: the offline-vs-causal study, every run a Ray task (`dgnode study`, same options).

    ray job submit --working-dir . -- python jobs/study.py --store /shared/features --models [dgode,corect] --seeds 5 --out /shared/study
"""

from _entry import run

if __name__ == "__main__":
    run("study")
