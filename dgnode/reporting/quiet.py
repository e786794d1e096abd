"""Library chatter silenced where it starts, so what a run prints is dgnode's own output plus real warnings.

:func:`quiet_libraries` sets each library's own switch, once, before Ray, Tune, Ray Data, Optuna or
MLflow print anything; it never filters printed text, so a warning nobody chose to silence still
shows. What it silences, and why each is noise for a dgnode run:

=====================================  ===============================================================
switch                                 silences
=====================================  ===============================================================
``RAY_AIR_NEW_OUTPUT=0``               Tune's console reporter, which prints an experiment box and a
                                       TensorBoard hint even at ``verbose=0`` (the legacy reporter
                                       honours it); dgnode draws its own trial bar
``RAY_DATA_LOG_LEVEL=WARNING``         Ray Data's per-dataset "Starting execution" / "finished" INFO
                                       lines (read when ``ray.data`` is imported)
``ray.data._internal.progress``: ERROR "Progress bars disabled": dgnode turns Ray Data's bars off on
                                       purpose and draws one bar per stage
``MLFLOW_LOGGING_LEVEL=WARNING``       INFO lines such as "Creating initial MLflow database tables"
``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR`` MLflow's own tqdm bar ("Downloading artifacts") while a model
``=false``                             is registered: carriage-return debris in a log
``mlflow.pytorch``: ERROR              the pickle-format warning: dgnode pickles on purpose (DGODE's
                                       forward takes a conversation batch, which ``pt2`` cannot trace)
optuna verbosity WARNING               "A new study created in memory" per search
``RAY_AUTH_MODE=token``                "Token authentication is enabled for this Ray cluster": Ray's
                                       default for a new local instance, said explicitly (only with
                                       ``local_ray``, and only before Ray is first imported: Ray
                                       reads it then)
=====================================  ===============================================================

Not a switch but a call: the model is registered through ``MlflowClient`` (``dgnode.tracking.runs``),
because MLflow's fluent registration prints "Successfully registered model" / "Created version" with
``print`` (no logger to quiet).

Left alone on purpose: ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS`` (without Tune's result files its
result grid warns "Failed to fetch metrics" for every trial), and the one C++ line Ray core logs
when Ray Data starts its actor pool ("has constructor arguments in the object store and
max_restarts > 0", ray-project/ray#57733: Ray Data passes its context by reference; only
``RAY_BACKEND_LOG_LEVEL=fatal`` would hide it, and every real core error with it).

Environment variables are only defaulted (a user's own setting wins), are read when their library
is first imported, and reach the Ray workers a local Ray starts after this call.
"""

from __future__ import annotations

import logging
import os

__all__ = ["quiet_libraries"]

_ENVIRONMENT = {
    "RAY_AIR_NEW_OUTPUT": "0",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "RAY_DATA_LOG_LEVEL": "WARNING",
}
_LOGGER_LEVELS = {
    "ray.data._internal.progress": logging.ERROR,
    "mlflow.pytorch": logging.ERROR,
}


def quiet_libraries(local_ray: bool = False) -> None:
    """Set the switches of the module docstring (idempotent; imports only optuna, ~0.1 s).
    ``local_ray``: this process will start its own local Ray (no address, no ``RAY_ADDRESS``)."""
    import sys

    for name, value in _ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    if local_ray and "ray" not in sys.modules:
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    for name, level in _LOGGER_LEVELS.items():
        logging.getLogger(name).setLevel(level)
    try:
        import optuna
    except ImportError:
        return
    # Optuna sets its logger to INFO when first imported, so its own switch, after the import.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
