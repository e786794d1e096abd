"""Search-space YAML: parsing, validation against the training config, Tune conversion."""

from __future__ import annotations

import textwrap

import pytest

from dgnode.errors import InputError
from dgnode.training.config import load_train_config
from dgnode.tuning.space import Distribution, load_search_space


@pytest.fixture(scope="module")
def base():
    return load_train_config()


def _write(tmp_path, text: str):
    path = tmp_path / "space.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_project_space_parses(repo_root, base):
    space = load_search_space(repo_root / "configs" / "search_space_dgode.yaml", base)
    assert set(space.searched) == {
        "model.ode.method", "model.ode.rtol", "model.ode.atol", "model.ode.T", "model.ode.step_size",
        "model.ode.adjoint", "model.mixhop.hops", "model.alpha", "model.wp", "model.wf", "model.hidden",
        "model.dropout", "optim.lr", "optim.weight_decay",
    }
    assert space.searched["model.ode.method"] == Distribution("choice", values=("exact", "dopri5", "rk4", "euler", "midpoint", "bosh3"))
    assert space.searched["model.ode.rtol"] == Distribution("loguniform", low=1e-5, high=1e-2)
    assert space.searched["model.mixhop.hops"] == Distribution("int", low=1, high=4)
    assert space.fixed == {"train.nfe_cap": 2000}
    assert len(space.points_to_evaluate) == 1
    config = space.config_for(base, space.points_to_evaluate[0])
    assert (config.model.ode.method, config.model.hidden, config.optim.lr, config.train.nfe_cap) == ("dopri5", 512, 1e-4, 2000)


def test_distributions_convert_to_tune_domains(tmp_path, base):
    from ray.tune.search.sample import Categorical, Float, Integer

    space = load_search_space(_write(tmp_path, """
        params:
          model.ode.method: {choice: [rk4, euler]}
          optim.lr: {loguniform: [1.0e-4, 1.0e-2]}
          model.alpha: {uniform: [0.5, 1.0]}
          model.mixhop.hops: {int: [1, 3]}
          train.batch_size: {logint: [4, 32]}
          model.ode.adjoint: false
    """), base)
    domains = space.tune_param_space()
    assert set(domains) == {"model.ode.method", "optim.lr", "model.alpha", "model.mixhop.hops", "train.batch_size"}
    assert isinstance(domains["model.ode.method"], Categorical) and domains["model.ode.method"].categories == ["rk4", "euler"]
    assert isinstance(domains["optim.lr"], Float) and (domains["optim.lr"].lower, domains["optim.lr"].upper) == (1e-4, 1e-2)
    # Integer ranges are inclusive in the YAML, exclusive at the top in Tune.
    assert isinstance(domains["model.mixhop.hops"], Integer) and (domains["model.mixhop.hops"].lower, domains["model.mixhop.hops"].upper) == (1, 4)
    assert (domains["train.batch_size"].lower, domains["train.batch_size"].upper) == (4, 33)
    config = space.config_for(base, {"model.ode.method": "euler", "optim.lr": 0.003, "model.alpha": 0.7,
                                     "model.mixhop.hops": 2, "train.batch_size": 8})
    assert (config.model.ode.method, config.optim.lr, config.model.alpha, config.model.mixhop.hops,
            config.train.batch_size, config.model.ode.adjoint) == ("euler", 0.003, 0.7, 2, 8, False)


@pytest.mark.parametrize(
    "body, line, message",
    [
        ("params:\n  model.hiden: 16\n", 2, "unknown key(s) model.hiden; valid keys under model: alpha, dropout, encoder_layers, hidden"),
        ("params:\n  model.ode.method: {choice: [rk4, magic]}\n", 2, "params.model.ode.method: "),
        ("params:\n  optim.lr: {loguniform: [0.0, 1.0e-2]}\n", 2, "params.optim.lr: loguniform needs low > 0"),
        ("params:\n  optim.lr: {uniform: [0.1, 0.01]}\n", 2, "params.optim.lr: uniform needs finite low < high, got [0.1, 0.01]"),
        ("params:\n  model.hidden: {int: [8, 16.5]}\n", 2, "params.model.hidden: int bounds must be integers"),
        ("params:\n  model.hidden: {chioce: [8, 16]}\n", 2, "params.model.hidden: unknown distribution 'chioce'; expected one of choice, uniform, loguniform, int, logint"),
        ("params:\n  model.hidden: [8, 16]\n", 2, "params.model.hidden: a plain list is ambiguous; write {choice: [8, 16]}"),
        ("params:\n  model.dropout: {uniform: [0.1, 1.5]}\n", 2, "params.model.dropout: "),
        ("params:\n  train.epochs: ten\n", 2, "params.train.epochs: expected an integer, got 'ten'"),
        ("param:\n  model.hidden: 8\n", 1, "unknown top-level key(s) ['param']"),
        ("params:\n  model.hidden: {choice: [8, 16]}\npoints_to_evaluate:\n  - {model.hidden: 32}\n", 4,
         "points_to_evaluate[0].model.hidden: 32 is outside choice of 8, 16"),
        ("params:\n  model.hidden: {choice: [8, 16]}\n  optim.lr: {loguniform: [1.0e-4, 1.0e-2]}\npoints_to_evaluate:\n  - {model.hidden: 8}\n", 5,
         "points_to_evaluate[0]: give a value for every searched key; missing optim.lr"),
        ("params:\n  model.hidden: {choice: [8, 16]}\npoints_to_evaluate:\n  - {model.hidden: 8, optim.lr: 0.1}\n", 4,
         "points_to_evaluate[0].optim.lr: not a searched key (searched: model.hidden)"),
        ("params: {}\n", 1, "'params' must be a non-empty mapping"),
        ("params:\n  model.hidden: [8, 16\n", None, "not valid YAML"),
    ],
)
def test_invalid_spaces_name_file_line_and_key(tmp_path, base, body, line, message):
    path = tmp_path / "space.yaml"
    path.write_text(body)
    with pytest.raises(InputError) as error:
        load_search_space(path, base)
    text = str(error.value)
    prefix = f"{path}:{line}: " if line is not None else f"{path}:"
    assert text.startswith(prefix), text
    assert message in text, text


def test_missing_file_is_a_clear_error(tmp_path, base):
    with pytest.raises(InputError, match="search space file not found"):
        load_search_space(tmp_path / "nope.yaml", base)


def test_boolean_choice_rejects_integer_point(tmp_path, base):
    space_path = _write(tmp_path, """
        params:
          model.ode.adjoint: {choice: [false, true]}
        points_to_evaluate:
          - {model.ode.adjoint: 1}
    """)
    with pytest.raises(InputError, match=r"points_to_evaluate\[0\].model.ode.adjoint: 1 is outside choice of False, True"):
        load_search_space(space_path, base)
