"""The registered model: weights plus the model's own config, loaded without unpickling anything.

A dgnode model in MLflow is a pyfunc "model from code" (MLflow 3): its directory holds::

    MLmodel, requirements.txt, python_env.yaml, ...   MLflow's own (YAML and text)
    pyfunc_code.py                                   two lines: set_model(DialogueModel())
    artifacts/run/config.yaml                        the resolved TrainConfig
    artifacts/run/best.pt                            weights, dims, label names, speakers (torch.save)
    artifacts/run/model.json                         dims, speakers, labels, input normalisation

``artifacts/run`` is a :class:`~dgnode.training.rundir.RunDir`. Nothing is cloudpickled (no
``python_model.pkl``): :meth:`DialogueModel.load_context` rebuilds the module with
:func:`dgnode.models.registry.build_model` from the config and reads the weights with
``torch.load(weights_only=True)``, which refuses any object that is not a tensor or a plain
container.

Trust: ``mlflow.pyfunc.load_model`` executes the model directory's ``pyfunc_code.py`` (whoever
can write the registry can change it). ``dgnode predict --model`` does not: :func:`fetch_run_dir`
downloads the directory and only the run files are read, by dgnode's installed code, so a
tampered registry entry can give it wrong weights but cannot run code.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import mlflow.pyfunc

from dgnode.errors import InputError

__all__ = ["MODEL_CODE", "RUN_ARTIFACT", "DialogueModel", "fetch_run_dir", "write_run_dir"]

# The models-from-code file MLflow copies into the model directory (runs it on pyfunc load).
MODEL_CODE = Path(__file__).with_name("pyfunc_code.py")
RUN_ARTIFACT = "run"
# What a model needs from a best-model state (the rest, e.g. valid predictions, stays in the run).
# Weights and what the checkpoint records about its inputs (dgnode.training.provenance): with them
# `dgnode predict --model` normalises with the training statistics instead of refitting them.
_MODEL_KEYS = ("model", "config", "dims", "label_names", "num_speakers", "best_epoch", "modalities", "normalisation",
               "speaker_order", "store", "versions")


def write_run_dir(directory: str | Path, config: Any, state: Mapping[str, Any],
                  normalisation: Mapping[str, Any] | None = None) -> Path:
    """Write the run files of a logged model: config, weights with their metadata, model card.

    ``state``: a best-model state (:meth:`dgnode.training.trainer.Trainer.model_state`, or
    ``RunDir.load_model()`` of a run); ``normalisation``: the training data's
    (:attr:`~dgnode.features.dataset.ConversationSet.normalisation`, its statistics as lists), so
    raw features given to :meth:`DialogueModel.predict` are scaled as in training.
    """
    import torch

    from dgnode.training.rundir import RunDir

    run = RunDir(directory)
    run.write_config(config)
    weights = {k: state[k] for k in _MODEL_KEYS if k in state}
    if normalisation is not None:
        weights.setdefault("normalisation", dict(normalisation))
    weights["model"] = {k: v.detach().cpu() for k, v in state["model"].items()}
    run.save_model(weights)
    run.write_model_card({
        "model": config.model.name,
        "dims": dict(state["dims"]),
        "num_speakers": int(state["num_speakers"]),
        "label_names": list(state["label_names"]),
        "normalisation": dict(normalisation or {"method": "none"}),
        "format": "torch.save state dict, read with torch.load(weights_only=True)",
        "torch": torch.__version__,
    })
    return run.path


def fetch_run_dir(model_uri: str, tracking_uri: str, destination: str | Path) -> Path:
    """Download a logged dgnode model (``models:/NAME/VERSION``, ``runs:/ID/model``...) and
    return its run directory; only files are written, nothing in them is executed."""
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    try:
        # A version's source is itself a models:/m-ID URI, which MLflow resolves against the
        # process-wide tracking URI, not the one passed in (it would open ./mlflow.db).
        with _process_tracking_uri(tracking_uri):
            local = Path(download_artifacts(artifact_uri=model_uri, dst_path=str(destination),
                                            tracking_uri=tracking_uri))
        flavor = Model.load(str(local)).flavors.get("python_function", {})
    except MlflowException as error:
        raise InputError(f"cannot load model {model_uri} from {tracking_uri}: {error.message}") from None
    artifact = flavor.get("artifacts", {}).get(RUN_ARTIFACT, {}).get("path")
    run_dir = (local / artifact).resolve() if artifact else None
    if run_dir is None or local.resolve() not in run_dir.parents or not run_dir.is_dir():
        raise InputError(f"{model_uri} is not a dgnode model (no {RUN_ARTIFACT!r} artifact); "
                         "it was not logged by dgnode train/tune")
    return run_dir


class DialogueModel(mlflow.pyfunc.PythonModel):
    """The pyfunc of a dgnode model: predicts every utterance of whole dialogues.

    Input (a pandas DataFrame, one row per utterance, each dialogue's rows in conversation
    order): ``dialog_id`` (optional: one dialogue), ``speaker`` (index among the dialogue's
    speakers, or a name: indexed by first appearance in the dialogue, as in training,
    :func:`dgnode.features.dataset.first_appearance_index`) and one column per modality the model uses, each cell the raw feature
    vector as the feature store holds it. Output: ``dialog_id``, ``position``, ``label``
    (class index), ``predicted`` (class name), ``probability`` (softmax of the prediction).
    """

    # MLflow would warn, at import and when logging, that predict's input has no list[...] type
    # hint to infer a signature from (hence none below either); input is checked here instead.
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        from dgnode.models.registry import build_model
        from dgnode.training.rundir import RunDir

        run = RunDir(context.artifacts[RUN_ARTIFACT])
        config = run.read_config()
        state = run.load_model("cpu")
        self.card = run.read_model_card()
        self.dims = {m: int(d) for m, d in state["dims"].items()}
        self.label_names = list(state["label_names"])
        self.num_speakers = int(state["num_speakers"])
        self.model = build_model(config.model, self.dims, self.num_speakers, len(self.label_names))
        self.model.load_state_dict(state["model"])
        self.model.eval()

    def predict(self, context, model_input, params=None):
        import pandas as pd
        import torch

        from dgnode.features.dataset import collate

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        missing = [c for c in ("speaker", *self.dims) if c not in frame.columns]
        if missing:
            raise InputError(f"model input lacks column(s) {missing}; it needs speaker and {list(self.dims)}")
        if "dialog_id" not in frame.columns:
            frame = frame.assign(dialog_id="dialogue")
        conversations = [self._conversation(str(d), part) for d, part in frame.groupby("dialog_id", sort=False)]
        batch = collate(conversations)
        with torch.no_grad():
            probabilities = torch.softmax(self.model(batch).logits.float(), dim=-1)
        best, labels = probabilities.max(dim=-1)
        return pd.DataFrame({
            "dialog_id": [batch.dialog_ids[i] for i in batch.dialog_index.tolist()],
            "position": batch.position.tolist(),
            "label": labels.tolist(),
            "predicted": [self.label_names[i] for i in labels.tolist()],
            "probability": best.tolist(),
        })

    def _conversation(self, dialog_id: str, part: Any) -> Any:
        import numpy as np
        import torch

        from dgnode.features.dataset import Conversation, first_appearance_index

        features = {}
        for modality, dim in self.dims.items():
            matrix = np.asarray(np.stack(part[modality].map(np.asarray).tolist()), dtype=np.float32)
            if matrix.shape[1:] != (dim,):
                raise InputError(f"dialogue {dialog_id}: {modality} vectors have shape {matrix.shape[1:]}, expected ({dim},)")
            features[modality] = torch.from_numpy(np.ascontiguousarray(self._normalise(matrix, modality)))
        speakers = part["speaker"].tolist()
        if all(isinstance(s, (int, np.integer)) for s in speakers):
            index = np.asarray(speakers, dtype=np.int64)
        else:
            index = first_appearance_index(np.asarray(speakers, dtype=str))
        if index.min() < 0 or index.max() >= self.num_speakers:
            raise InputError(f"dialogue {dialog_id}: speaker indices {sorted(set(index.tolist()))} outside the "
                             f"{self.num_speakers} speakers the model knows")
        n = len(part)
        return Conversation(dialog_id=dialog_id, split="predict", utt_ids=[f"{dialog_id}_{i}" for i in range(n)],
                            features=features, speakers=torch.from_numpy(index),
                            labels=torch.full((n,), -1, dtype=torch.long))

    def _normalise(self, matrix: Any, modality: str) -> Any:
        # The float32 operations of dgnode.features.dataset.load_conversations, with its fitted stats.
        import numpy as np

        from dgnode.features.dataset import L2_FLOOR

        normalisation = self.card.get("normalisation", {})
        method = normalisation.get("method", "none")
        if method == "l2":
            matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), L2_FLOOR)
        elif method == "standard":
            stats = normalisation["stats"][modality]
            matrix = (matrix - np.asarray(stats["mean"], dtype=np.float32)) / np.asarray(stats["std"], dtype=np.float32)
        return matrix.astype(np.float32, copy=False)


@contextmanager
def _process_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's process-wide tracking URI (and the variable it mirrors it to) set to ``uri``
    within the block, both as they were after it."""
    import os

    import mlflow

    saved_uri, saved_env = mlflow.tracking._tracking_service.utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved_uri)
        if saved_env is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved_env
