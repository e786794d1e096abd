"""TrainConfig: the shipped YAML files, overrides and validation errors."""

from __future__ import annotations

import pytest

from dgnode.options import ConfigError, dump_yaml, replace_dotted, to_dict
from dgnode.models.baselines import ContextGRUConfig, MLPConfig
from dgnode.models.corect import CORECTConfig
from dgnode.models.dgode import DGODEConfig
from dgnode.training.config import TrainConfig, load_train_config


def test_paper_settings_in_iemocap_and_meld_configs(repo_root):
    iemocap = load_train_config(repo_root / "configs" / "dgode_iemocap.yaml")
    assert isinstance(iemocap.model, DGODEConfig)
    assert (iemocap.model.hidden, iemocap.model.dropout) == (512, 0.5)
    # lr 2.5e-4 and the exact solver are the config's stated departures from the paper (1e-4)
    assert (iemocap.optim.lr, iemocap.optim.weight_decay, iemocap.train.batch_size) == (2.5e-4, 1e-5, 16)
    assert (iemocap.model.text_encoder, iemocap.model.ode.method, iemocap.optim.schedule) == ("gru", "exact", "none")
    meld = load_train_config(repo_root / "configs" / "dgode_meld.yaml")
    assert (meld.optim.lr, meld.train.batch_size, meld.model.hidden) == (5e-6, 8, 512)


def test_corect_iemocap_config_is_the_release_setup(repo_root):
    config = load_train_config(repo_root / "configs" / "corect_iemocap.yaml")
    model = config.model
    assert isinstance(model, CORECTConfig)
    assert (model.hidden, model.dropout, model.wp, model.wf) == (100, 0.5, 11, 5)
    assert (model.text_encoder, model.encoder_layers, model.encoder_heads, model.encoder_feedforward) == ("transformer", 2, None, 2048)
    assert (model.audio_encoder, model.vision_encoder, model.rtgraph.heads, model.rtgraph.norm) == ("linear", "linear", 7, "batch")
    assert (model.pcm.layers, model.pcm.heads, model.pcm.memory_layers, model.pcm.memory_heads) == (2, 2, 3, 2)
    assert (config.optim.lr, config.optim.weight_decay, config.optim.schedule) == (2.5e-4, 1e-8, "plateau")
    assert (config.optim.plateau_patience, config.optim.plateau_factor) == (10, 0.1)
    assert (config.train.batch_size, config.train.epochs, config.train.patience) == (10, 50, 0)


@pytest.mark.parametrize(
    "name,config_class",
    [("corect_iemocap", CORECTConfig), ("corect_fast", CORECTConfig), ("dgode_iemocap", DGODEConfig), ("dgode_meld", DGODEConfig), ("dgode_fast", DGODEConfig),
     ("dgode_demo", DGODEConfig), ("baseline_mlp", MLPConfig), ("baseline_mlp_demo", MLPConfig),
     ("baseline_mlp_fast", MLPConfig), ("baseline_bigru", ContextGRUConfig), ("baseline_bigru_fast", ContextGRUConfig)],
)
def test_shipped_configs_load(repo_root, name, config_class):
    config = load_train_config(repo_root / "configs" / f"{name}.yaml")
    assert type(config.model) is config_class


def test_overrides_reach_nested_model_sections(repo_root):
    config = load_train_config(
        repo_root / "configs" / "dgode_iemocap.yaml",
        {"model.ode.method": "rk4", "model.ode.step_size": 0.1, "model.wf": 0, "optim.lr": 3e-4, "data.modalities": ["text"]},
    )
    assert (config.model.ode.method, config.model.ode.step_size, config.model.causal) == ("rk4", 0.1, True)
    assert config.optim.lr == 3e-4 and config.data.modalities == ["text"]


def test_switching_model_validates_against_the_new_model(repo_root):
    config = load_train_config(None, {"model.name": "bigru", "model.causal": True})
    assert isinstance(config.model, ContextGRUConfig) and config.model.causal
    with pytest.raises(ConfigError, match=r"unknown key\(s\) model.causal; valid keys under model: .*wp"):
        load_train_config(None, {"model.causal": True})


def test_unknown_key_in_file_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  name: dgode\n  hiddn: 64\n")
    with pytest.raises(ConfigError) as error:
        load_train_config(path)
    message = str(error.value)
    assert str(path) in message and "model.hiddn" in message and "hidden" in message
    path.write_text("train:\n  epochz: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) train.epochz; valid keys under train: .*epochs"):
        load_train_config(path)


@pytest.mark.parametrize(
    "override,message",
    [
        ({"train.epochs": 0}, "train.epochs and train.batch_size must be >= 1"),
        ({"train.nfe_cap": 0}, "train.nfe_cap must be >= 1 or null"),
        ({"optim.lr": -1}, "optim.lr must be positive"),
        ({"optim.lr": float("nan")}, "optim.lr must be a finite number, got nan"),
        ({"data.modalities": ["text", "smell"]}, "data.modalities must be a non-empty subset"),
        ({"data.normalise": "zscore"}, "expected one of 'standard', 'l2', 'none'"),
        ({"model.name": "transformer"}, "unknown model.name 'transformer'"),
        ({"model.ode.method": "rk45"}, "ode.method must be one of"),
        ({"model.wp": -5}, "wp must be >= 0 or -1"),
        ({"train.batch_size": "many"}, "train.batch_size: expected an integer, got 'many'"),
    ],
)
def test_invalid_values_are_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_train_config(None, override)


def test_a_key_given_twice_in_a_file_is_an_error(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("optim:\n  lr: 1.0e-3\n  lr: 1.0e-4\n")
    with pytest.raises(ConfigError, match=r"twice.yaml: not valid YAML: key 'lr' given twice \(lines 2 and 3\)"):
        load_train_config(path)


def test_yaml_round_trip_and_replace_dotted(tmp_path, repo_root):
    config = load_train_config(repo_root / "configs" / "dgode_fast.yaml", {"model.mixhop.hops": 2})
    dump_yaml(config, tmp_path / "config.yaml")
    again = load_train_config(tmp_path / "config.yaml")
    assert to_dict(again) == to_dict(config)
    changed = replace_dotted(config, {"model.ode.rtol": 1e-5, "train.seed": 7})
    assert changed.model.ode.rtol == 1e-5 and changed.train.seed == 7 and config.train.seed == 0


def test_defaults_are_the_paper_iemocap_settings():
    config = TrainConfig()
    assert (config.model.name, config.model.hidden, config.optim.lr, config.train.batch_size) == ("dgode", 512, 1e-4, 16)
