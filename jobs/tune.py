"""Ray job: a hyperparameter search, exactly `dgnode tune` (same options).

    ray job submit --working-dir . -- python jobs/tune.py --data.store /shared/features/iemocap \
        --space configs/search_space_dgode.yaml --trials 64 --max_concurrent 8 --epochs 60 \
        --tracking_uri http://mlflow-head:5000 --experiment dgode-iemocap --out /shared/tune/dgode

An interrupted search continues with `python jobs/tune.py --resume --out DIR`.
"""

from _entry import run

if __name__ == "__main__":
    run("tune")
