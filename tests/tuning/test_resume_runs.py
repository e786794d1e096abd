"""MLflow runs after a search's driver was killed at any point: one "best-on-test" run and one
model version whatever the final step's earlier session left, and no run for a trial that the
restored search never saved."""

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


def test_sweep_deletes_the_run_of_a_trial_the_search_never_saved(tmp_path):
    """The driver killed after a trial's run was created but before Tune saved the trial: the
    restored search runs a new trial instead, and the orphan run is deleted, not left RUNNING."""
    from dgnode.tuning.mlflow_callback import TRIAL_TAG
    from dgnode.tuning.results import sweep_runs

    uri, client, experiment, parent = _search(tmp_path)
    known = SimpleNamespace(trial_id="a", status="TERMINATED", last_result={"done": True}, config={})
    results = SimpleNamespace(_experiment_analysis=SimpleNamespace(trials=[known]))

    def trial_run(trial_id, kind="trial"):
        return client.create_run(experiment, tags={PARENT_TAG: parent, KIND_TAG: kind, TRIAL_TAG: trial_id}).info.run_id

    finished, orphan, final = trial_run("a"), trial_run("lost"), trial_run("a", kind="final")
    ended = sweep_runs(uri, experiment, parent, results, ledger={"a": "TERMINATED"})
    assert ended == {finished: "FINISHED", orphan: "DELETED", final: "FINISHED"}
    assert client.get_run(orphan).info.lifecycle_stage == "deleted"
    children = [r for r in client.search_runs([experiment]) if r.info.run_id != parent]
    assert orphan not in {r.info.run_id for r in children} and not [r for r in children if r.info.status == "RUNNING"]
