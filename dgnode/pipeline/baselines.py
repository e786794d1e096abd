"""What DGODE is measured against in the pipeline: a context-free MLP and the majority class.

* The **context-free MLP** (``model.name: mlp``, :mod:`dgnode.models.baselines`) sees each
  utterance on its own: it is trained once, with its fast config, on the same feature store and
  modalities, and tested once on its best valid epoch (:func:`dgnode.training.loop.fit`). The gap
  between DGODE and it is what the conversation adds.
* The **majority class** predicts the most frequent class of the train split for every test
  utterance: what a model that learned nothing scores.

Both are recorded in MLflow as a child run of the search (tag ``dgnode.run_kind=baseline``), so
the UI lists them beside the trials and the tested best trial.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Baselines", "majority_baseline", "train_baselines"]


@dataclass
class Baselines:
    """Test metrics (``ClassificationMetrics.to_dict()`` layout) of the two baselines."""

    mlp: dict[str, Any]
    mlp_dir: str  # the MLP's run directory: an absolute path or an s3:// URI
    majority: dict[str, Any]
    majority_class: str


def majority_baseline(data: Any) -> tuple[str, dict[str, Any]]:
    """The train split's most frequent class and its test metrics when predicted for everyone."""
    from dgnode.reporting.metrics import classification_metrics

    train = np.concatenate([c.labels.numpy() for c in data.split("train")])
    test = np.concatenate([c.labels.numpy() for c in data.split("test")])
    counts = np.bincount(train[train >= 0], minlength=len(data.label_names))
    winner = int(counts.argmax())  # ties: the first class in label order
    metrics = classification_metrics(test, np.full_like(test, winner), data.label_names)
    return data.label_names[winner], metrics.to_dict()


def train_baselines(store: str, config_path: str, modalities: list[str], out_dir: Any, tracking: dict[str, str] | None,
                    progress: bool) -> Baselines:
    """Train and test the MLP once, score the majority class, record both (``tracking``:
    ``tracking_uri``, ``experiment_id``, ``parent_run_id`` of the search; ``None``: not recorded)."""
    from dgnode.features.dataset import load_conversations
    from dgnode.training.config import load_train_config
    from dgnode.training.loop import fit

    config = load_train_config(config_path, {"data.store": store, "data.modalities": list(modalities)})
    data = load_conversations(store, config.data.modalities, config.data.normalise)
    result = fit(config, data, out_dir, progress=progress)
    mlp = result.test.summary()
    majority_class, majority = majority_baseline(data)
    if tracking:
        _record(tracking, config, data.label_names, mlp, majority_class, majority)
    return Baselines(mlp=mlp, mlp_dir=result.out_dir, majority=majority, majority_class=majority_class)


def _record(tracking: dict[str, str], config: Any, label_names: list[str], mlp: dict[str, Any], majority_class: str,
            majority: dict[str, Any]) -> None:
    from dgnode.tracking.runs import tracked_run
    from dgnode.tuning.mlflow_callback import KIND_TAG

    with tracked_run(tracking["tracking_uri"], tracking["experiment_id"], run_name="baseline-mlp",
                     parent_run_id=tracking["parent_run_id"], tags={KIND_TAG: "baseline"}) as run:
        run.log_config(config)
        run.log_evaluation(mlp, label_names, split="test")
        run.log_params({"majority_class": majority_class})
        run.log_metrics({"majority_test_wf1": majority["weighted_f1"], "majority_test_acc": majority["accuracy"]})
