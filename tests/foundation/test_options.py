"""Options declared once (dgnode.options): defaults, YAML, dotted overrides, clear errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from dgnode.options import ConfigError, flatten, load_config, read_yaml, replace_dotted, to_dict


@dataclass
class OdeSection:
    method: Literal["dopri5", "rk4", "euler"] = "dopri5"
    rtol: float = 1e-3
    step_size: float | None = None


@dataclass
class Example:
    hidden: int = 512
    modalities: list[str] = field(default_factory=lambda: ["text", "audio", "vision"])
    adjoint: bool = False
    ode: OdeSection = field(default_factory=OdeSection)

    def __post_init__(self) -> None:
        if self.hidden <= 0:
            raise ValueError(f"hidden must be positive, got {self.hidden}")


def test_defaults_then_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("hidden: 128\node:\n  method: rk4\n")
    config = load_config(Example, path, {"ode.rtol": 1e-5, "modalities": ["text", "audio"], "adjoint": True,
                                         "ode.step_size": 0.25})
    assert config.hidden == 128
    assert config.ode == OdeSection(method="rk4", rtol=1e-5, step_size=0.25)
    assert config.modalities == ["text", "audio"]
    assert config.adjoint is True
    assert flatten(to_dict(config))["ode.method"] == "rk4"


def test_unknown_key_names_key_file_and_valid_keys(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("ode:\n  solver: rk4\n")
    with pytest.raises(ConfigError) as info:
        load_config(Example, path)
    message = str(info.value)
    assert str(path) in message and "ode.solver" in message and "method" in message


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"hidden": "big"}, "hidden: expected an integer, got 'big'"),
        ({"ode.method": "rk45"}, "ode.method: expected one of 'dopri5', 'rk4', 'euler', got 'rk45'"),
        ({"adjoint": "maybe"}, "adjoint: expected true or false, got 'maybe'"),
        ({"hidden": -3}, "hidden must be positive"),
        ({"hidden": 4, "hidden.x": 1}, "hidden is a value"),
    ],
)
def test_bad_overrides_are_clear(override, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(Example, None, override)


def test_yaml_must_be_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(Example, path)


def test_yaml_traps_are_one_line_errors(tmp_path):
    twice = tmp_path / "twice.yaml"
    twice.write_text("hidden: 1\nhidden: 2\n")
    with pytest.raises(ConfigError, match=r"key 'hidden' given twice \(lines 1 and 2\)"):
        read_yaml(twice)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"hidden: \xe9\n")
    with pytest.raises(ConfigError, match=r"latin.yaml: not UTF-8 text \(byte 8\)"):
        read_yaml(latin)
    with pytest.raises(ConfigError, match="config file not found"):
        read_yaml(tmp_path / "missing.yaml")


def test_replace_dotted_validates():
    config = replace_dotted(Example(), {"ode.method": "euler", "hidden": 8})
    assert (config.hidden, config.ode.method) == (8, "euler")
    with pytest.raises(ConfigError):
        replace_dotted(Example(), {"ode.method": "bogus"})
