"""dgnode.reporting: exact metrics, the paper reference, figures and tables."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from dgnode.atomic import write_json
from dgnode.reporting import classification_metrics, paper_reference
from dgnode.reporting.plots import plot_confusion, plot_per_class_f1, plot_tsne
from dgnode.reporting.report import metrics_table

PNG = b"\x89PNG\r\n\x1a\n"


def test_classification_metrics_exact_numbers():
    labels = [0, 0, 0, 1, 1, 2, -1, -1]
    predictions = [0, 0, 1, 1, 0, 2, 2, 0]
    metrics = classification_metrics(labels, predictions, ["a", "b", "c", "d"])
    # class a: tp 2, fp 1, fn 1 -> F1 2/3; b: tp 1, fp 1, fn 1 -> 1/2; c: 1; d: never seen -> 0
    assert metrics.per_class_f1 == pytest.approx({"a": 2 / 3, "b": 0.5, "c": 1.0, "d": 0.0})
    assert metrics.weighted_f1 == pytest.approx((3 * 2 / 3 + 2 * 0.5 + 1 * 1.0) / 6)
    assert metrics.accuracy == pytest.approx(4 / 6)
    assert metrics.support == {"a": 3, "b": 2, "c": 1, "d": 0}
    assert metrics.confusion == [[2, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert (metrics.num_labelled, metrics.num_unlabelled) == (6, 2)


def test_classification_metrics_rejects_bad_input():
    with pytest.raises(ValueError, match="differ in shape"):
        classification_metrics([0, 1], [0], ["a", "b"])
    with pytest.raises(ValueError, match="outside"):
        classification_metrics([0, 5], [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="no labelled utterances"):
        classification_metrics([-1], [0], ["a", "b"])


def test_paper_reference_matches_iemocap_labels_in_any_spelling():
    reference = paper_reference(["hap", "sad", "neu", "ang", "exc", "fru"])
    assert reference["per_class_f1"] == {"hap": 71.8, "sad": 71.0, "neu": 74.9, "ang": 55.7, "exc": 78.6, "fru": 75.2}
    assert reference["weighted_f1"] == 72.8
    assert paper_reference(["excited", "happy", "sad", "neutral", "angry", "frustrated"])["per_class_f1"]["excited"] == 78.6
    assert paper_reference(["hap", "sad", "neu", "ang"]) is None


def test_paper_reference_for_meld_has_the_weighted_f1_and_no_invented_class_numbers():
    meld = ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]
    reference = paper_reference(meld)
    assert reference["weighted_f1"] == 67.2 and reference["per_class_f1"] == {}
    assert paper_reference(list(reversed(meld)))["weighted_f1"] == 67.2
    assert paper_reference(meld[:6]) is None and paper_reference(meld, model="mlp") is None
    assert paper_reference(["neutral", "positive", "negative"]) is None  # sentiment3: no paper numbers


def test_metrics_table_has_paper_row_only_for_iemocap_and_meld():
    from rich.console import Console

    def render(names):
        evaluation = {"per_class_f1": {n: 0.5 for n in names}, "accuracy": 0.25, "weighted_f1": 0.125,
                      "support": {n: 2 for n in names}}
        console = Console(file=io.StringIO(), width=160)
        console.print(metrics_table(evaluation, names))
        return console.file.getvalue()

    iemocap = render(["hap", "sad", "neu", "ang", "exc", "fru"])
    assert "DGODE paper" in iemocap and "72.8" in iemocap and "frustrated" in iemocap and "12.5" in iemocap
    assert "DGODE paper" not in render(["x", "y"])
    meld = render(["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"])
    paper = next(line for line in meld.splitlines() if "DGODE paper" in line)
    cells = [cell.strip() for cell in paper.split("│")[1:-1]]
    assert cells == ["DGODE paper", *["-"] * 7, "", "67.2"]  # no per-class numbers are invented
    # The paper's MELD column order: neutral, surprise, fear, sadness, joy, disgust, anger.
    header = next(line for line in meld.splitlines() if "neutral" in line)
    assert [header.index(n) for n in ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")] == sorted(
        header.index(n) for n in ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"))


def test_the_paper_row_is_only_for_dgode_runs():
    from rich.console import Console

    names = ["hap", "sad", "neu", "ang", "exc", "fru"]
    evaluation = {"per_class_f1": {n: 0.5 for n in names}, "accuracy": 0.25, "weighted_f1": 0.125}
    assert paper_reference(names, model="dgode")["weighted_f1"] == 72.8
    for model in ("mlp", "bigru", "corect"):
        assert paper_reference(names, model=model) is None
        console = Console(file=io.StringIO(), width=160)
        console.print(metrics_table(evaluation, names, model=model))
        assert "DGODE paper" not in console.file.getvalue() and "12.5" in console.file.getvalue()


def test_figures_are_written(tmp_path):
    names = ["hap", "sad", "neu"]
    assert plot_confusion([[5, 1, 0], [0, 3, 2], [0, 0, 0]], names, tmp_path / "c.png").read_bytes()[:8] == PNG
    assert plot_per_class_f1({"hap": 0.5, "sad": 0.7, "neu": 0.1}, tmp_path / "f.png",
                             reference={"hap": 71.8, "sad": 71.0, "neu": 74.9}).read_bytes()[:8] == PNG
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2, -1], 30)
    points = rng.standard_normal((120, 8)) + labels[:, None]
    path = plot_tsne(points, labels, names, tmp_path / "t.png", max_points=50)
    assert path.read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match="at least 5 labelled points"):
        plot_tsne(points[:3], labels[:3], names, tmp_path / "x.png")


def test_write_json_turns_non_finite_into_null(tmp_path):
    path = write_json(tmp_path / "r.json", {"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": 2}})
    assert json.loads(path.read_text()) == {"a": None, "b": [1.0, None], "c": {"d": 2}}


def test_quiet_libraries_switches_noise_off_at_its_source_and_keeps_a_users_choice(monkeypatch):
    import logging

    import optuna

    from dgnode.reporting.quiet import quiet_libraries

    saved = {name: logging.getLogger(name).level for name in ("mlflow.pytorch", "ray.data._internal.progress")}
    verbosity = optuna.logging.get_verbosity()
    monkeypatch.setenv("RAY_AIR_NEW_OUTPUT", "1")  # the user's own setting wins
    for name in ("MLFLOW_LOGGING_LEVEL", "RAY_DATA_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    try:
        quiet_libraries()
        import os

        assert os.environ["RAY_AIR_NEW_OUTPUT"] == "1"
        assert os.environ["MLFLOW_LOGGING_LEVEL"] == os.environ["RAY_DATA_LOG_LEVEL"] == "WARNING"
        assert logging.getLogger("mlflow.pytorch").level == logging.ERROR
        assert logging.getLogger("ray.data._internal.progress").level == logging.ERROR
        assert optuna.logging.get_verbosity() == optuna.logging.WARNING
        # Not a filter: warnings of every other logger still pass.
        assert logging.getLogger("mlflow.tracking").getEffectiveLevel() <= logging.WARNING
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
        optuna.logging.set_verbosity(verbosity)
