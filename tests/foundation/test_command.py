"""``run_command``: ``--config`` files are read strictly, and every error is one line with the
exit code of its kind (2: bad input, 1: the environment)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dgnode.command import Command, run_command
from dgnode.errors import EnvironmentFault, InputError
from dgnode.options import check_finite


@dataclass
class ToyOptions:
    """A toy command.

    Attributes:
        lr: learning rate
        name: a name
        fail: raise this kind of error from the handler
    """

    lr: float = 0.1
    name: str = "x"
    fail: str = ""

    def __post_init__(self) -> None:
        check_finite("toy", lr=self.lr)


SEEN: list[ToyOptions] = []


def _handler(options: ToyOptions) -> int:
    if options.fail == "input":
        raise InputError("bad value", path="in.txt", line=3)
    if options.fail == "environment":
        raise EnvironmentFault("cannot write (No space left on device)", path="/store")
    SEEN.append(options)
    return 0


COMMANDS = (Command("toy", ToyOptions, _handler, help="a toy"),)


def run(argv: list[str]) -> int:
    return run_command(COMMANDS, ["toy", *argv])


def test_config_file_traps_are_one_line_with_exit_2(tmp_path, capsys):
    twice = tmp_path / "twice.yaml"
    twice.write_text("name: a\nname: b\n")
    assert run(["--config", str(twice)]) == 2
    assert capsys.readouterr().err.startswith(
        f"dgnode: error: {twice}: not valid YAML: key 'name' given twice (lines 1 and 2): keep one")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    assert run(["--config", str(latin)]) == 2
    assert capsys.readouterr().err == f"dgnode: error: {latin}: not UTF-8 text (byte 9): save the file as UTF-8\n"
    nan = tmp_path / "nan.yaml"
    nan.write_text("lr: .nan\n")
    assert run(["--config", str(nan)]) == 2
    assert capsys.readouterr().err == "dgnode: error: options: toy.lr must be a finite number, got nan\n"
    assert run(["--config", str(tmp_path / "missing.yaml")]) == 2
    assert capsys.readouterr().err == f"dgnode: error: {tmp_path / 'missing.yaml'}: config file not found\n"
    assert not SEEN


def test_good_config_files_and_inline_yaml_still_work(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("name: a\nlr: 0.5\n")
    assert run(["--config", str(good), "--lr", "0.25"]) == 0
    assert (SEEN[-1].name, SEEN[-1].lr) == ("a", 0.25)
    assert run(["--config", "name: inline"]) == 0
    assert SEEN[-1].name == "inline"


def test_error_kinds_have_their_exit_codes(capsys):
    assert run(["--fail", "input"]) == 2
    assert capsys.readouterr().err == "dgnode: error: in.txt:3: bad value\n"
    assert run(["--fail", "environment"]) == 1
    assert capsys.readouterr().err == "dgnode: error: /store: cannot write (No space left on device)\n"


def test_nan_learning_rate_in_a_train_config_is_one_line(tmp_path, capsys):
    from dgnode.cli import main

    config = tmp_path / "train.yaml"
    config.write_text("optim:\n  lr: .nan\n")
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == "dgnode: error: config: optim.lr must be a finite number, got nan\n"


@pytest.fixture(autouse=True)
def _forget():
    SEEN.clear()
