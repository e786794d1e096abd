"""The models-from-code file of a logged dgnode model (MLflow copies it into the model directory
and runs it on ``mlflow.pyfunc.load_model``); see :mod:`dgnode.tracking.logged_model`."""

from mlflow.models import set_model

from dgnode.tracking.logged_model import DialogueModel

__all__: list[str] = []  # a script MLflow runs, not a module to import from

set_model(DialogueModel())
