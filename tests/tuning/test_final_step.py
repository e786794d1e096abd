"""The search's final step (test the best trial, register it) after a kill at any point: one
"best-on-test" run and one model version, whatever the earlier session left."""

from __future__ import annotations

from types import SimpleNamespace

from mlflow import MlflowClient

from dgnode.tracking.runs import PARENT_TAG
from dgnode.tuning.mlflow_callback import KIND_TAG
from dgnode.tuning.search import SearchOutcome, _earlier_final_run

SETTINGS = SimpleNamespace(registered_model=None, experiment="final-step")


def _search(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment(SETTINGS.experiment)
    parent = client.create_run(experiment).info.run_id
    return uri, client, experiment, parent


def _final(client, experiment, parent, status):
    run = client.create_run(experiment, tags={PARENT_TAG: parent, KIND_TAG: "final"}).info.run_id
    client.log_metric(run, "test_wf1", 0.5)
    client.set_terminated(run, status)
    return run


def _outcome():
    return SearchOutcome(out_dir="x", tracking_uri="", experiment_id="", parent_run_id="", interrupted=False)


def test_no_earlier_final_run(tmp_path):
    uri, client, experiment, parent = _search(tmp_path)
    outcome = _outcome()
    assert _earlier_final_run(outcome, uri, experiment, parent, SETTINGS) is None
    assert outcome.final_run_id is None


def test_a_final_run_killed_before_registering_is_reopened_not_repeated(tmp_path):
    uri, client, experiment, parent = _search(tmp_path)
    killed = _final(client, experiment, parent, "FAILED")  # what the resume marks a SIGKILLed run
    outcome = _outcome()
    assert _earlier_final_run(outcome, uri, experiment, parent, SETTINGS) == killed
    assert outcome.final_run_id is None  # the test and the registration still have to run


def test_a_final_run_killed_after_registering_is_kept_and_finished(tmp_path):
    uri, client, experiment, parent = _search(tmp_path)
    run = _final(client, experiment, parent, "FAILED")
    client.create_registered_model(SETTINGS.experiment)
    client.create_model_version(SETTINGS.experiment, source=str(tmp_path / "model"), run_id=run)
    outcome = _outcome()
    assert _earlier_final_run(outcome, uri, experiment, parent, SETTINGS) == run
    assert (outcome.final_run_id, outcome.model_version, outcome.test["weighted_f1"]) == (run, "1", 0.5)
    assert client.get_run(run).info.status == "FINISHED"
