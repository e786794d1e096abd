"""Ray job: one data-parallel training run on Ray Train, tracked in MLflow (`dgnode train-ray`).

    ray job submit --working-dir . -- python jobs/train.py --data.store /shared/features/iemocap \
        --config configs/dgode_iemocap.yaml --num_workers 4 --gpus_per_worker 1 \
        --storage_path /shared/ray_results --name dgode-iemocap --tracking_uri http://mlflow-head:5000

Relaunching with the same --storage_path and --name resumes from the last checkpoint.
"""

from _entry import run

if __name__ == "__main__":
    run("train-ray")
