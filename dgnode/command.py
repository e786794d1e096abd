"""A ``dgnode`` subcommand as data: its options dataclass, an optional config dataclass, a handler.

A stage's ``cli`` module lists its commands::

    @dataclass
    class ScanOptions:
        \"\"\"Scan a raw corpus tree into manifest.parquet and rejects.parquet.

        Attributes:
            root: the raw release (any depth above Session1..5)
            out: where the manifest goes
            strict: fail on the first malformed input
        \"\"\"
        root: str
        out: str
        strict: bool = False

    COMMANDS = (Command("corpus scan", ScanOptions, run_scan, help="...", positional=("root",)),)

and :func:`build_parser` turns every field into a flag (``--strict``, ``--out DIR``) with its type,
default and the help from the docstring. With ``config=TrainConfig`` the config's keys become flags
too (``--optim.lr 3e-4``) and ``--config FILE`` reads a YAML file of either; the handler then gets
``handler(options, config)``. Later flags beat earlier ones and a file beats defaults, so
``--config base.yaml --train.epochs 3`` is the file with one change. Boolean flags take an optional
value: ``--strict`` is ``--strict true``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from argparse import ArgumentError
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence, get_type_hints

from dgnode.errors import DgnodeError
from dgnode.options import ConfigError, explain_error, parse, read_yaml

__all__ = ["Command", "build_parser", "run_command"]

CONFIG_FLAG = "config"


@dataclass(frozen=True)
class Command:
    """One subcommand. ``name`` may have two words (``"corpus scan"``) for a command group."""

    name: str
    options: type
    handler: Callable[..., int | None]
    help: str
    config: type | None = None
    positional: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not dataclasses.is_dataclass(self.options):
            raise TypeError(f"command {self.name!r}: options must be a dataclass, got {self.options!r}")
        names = {f.name for f in dataclasses.fields(self.options)}
        if CONFIG_FLAG in names:
            raise TypeError(f"command {self.name!r}: '--{CONFIG_FLAG}' is reserved for the YAML file")
        if self.config is not None:
            clash = names & {f.name for f in dataclasses.fields(self.config)}
            if clash:
                raise TypeError(f"command {self.name!r}: options and config both declare {sorted(clash)}")


def build_parser(commands: Iterable[Command], prog: str = "dgnode", description: str = ""):
    """A jsonargparse parser with one subcommand per :class:`Command`."""
    from jsonargparse import ArgumentParser

    root = ArgumentParser(prog=prog, description=description, exit_on_error=False)
    groups: dict[str, Any] = {}
    top = root.add_subcommands(dest="command", required=True)
    children: dict[str, list[Command]] = {}
    for command in commands:
        head, _, tail = command.name.partition(" ")
        if tail:
            children.setdefault(head, []).append(command)
        else:
            top.add_subcommand(head, _command_parser(command, f"{prog} {head}"), help=command.help)
    for head, members in children.items():
        group = ArgumentParser(prog=f"{prog} {head}", exit_on_error=False)
        # jsonargparse wants a level attached to its parent before it gets subcommands of its own.
        top.add_subcommand(head, group, help=", ".join(c.name.partition(" ")[2] for c in members))
        sub = group.add_subcommands(dest="subcommand", required=True)
        for command in members:
            tail = command.name.partition(" ")[2]
            sub.add_subcommand(tail, _command_parser(command, f"{prog} {command.name}"), help=command.help)
        groups[head] = group
    return root


def run_command(commands: Sequence[Command], argv: Sequence[str] | None, prog: str = "dgnode",
                description: str = "") -> int:
    """Parse ``argv``, build the options (and config), run the handler; a bad value or a
    :class:`DgnodeError` is one ``PROG: error: ...`` line on stderr and the error's exit code
    (2 for bad input, 1 for an :class:`~dgnode.errors.EnvironmentFault`)."""
    by_name = {c.name: c for c in commands}
    try:
        parser = build_parser(commands, prog, description)
        namespace = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        name = namespace.command
        values = namespace[name]
        if name not in by_name:
            name = f"{name} {values.subcommand}"
            values = values[values.subcommand]
        command = by_name[name]
        return int(command.handler(*_instantiate(command, values.as_dict())) or 0)
    except (ArgumentError, ConfigError, DgnodeError) as error:
        message = explain_error(error) if isinstance(error, ArgumentError) else str(error)
        print(f"{prog}: error: {message}", file=sys.stderr)
        return getattr(error, "exit_code", 2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def _command_parser(command: Command, prog: str):
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(prog=prog, description=(command.options.__doc__ or "").split("\n\n")[0],
                            exit_on_error=False)
    hints = get_type_hints(command.options)
    defaults = {f.name: f.default for f in dataclasses.fields(command.options)}
    for name in command.positional:
        optional = {} if defaults[name] is dataclasses.MISSING else {"nargs": "?", "default": defaults[name]}
        parser.add_argument(name, type=hints[name], help=_field_help(command.options, name), **optional)
    parser.add_class_arguments(command.options, None, skip=set(command.positional), sub_configs=True)
    if command.config is not None:
        parser.add_class_arguments(command.config, None, sub_configs=True)
    parser.add_argument(f"--{CONFIG_FLAG}", action=_strict_config_file(),
                        help="YAML file of any of these options (flags after it win)")
    for action in parser._actions:
        if getattr(action, "_typehint", None) is bool:
            action.nargs, action.const = "?", True  # `--strict` alone means true
    return parser


@functools.lru_cache(maxsize=1)
def _strict_config_file() -> type:
    """jsonargparse's ``--config`` action, reading the file first with :func:`read_yaml`: its own
    loader keeps the last of a key given twice and lets a non-UTF-8 file escape as a traceback."""
    from jsonargparse import ActionConfigFile

    class StrictConfigFile(ActionConfigFile):
        def __call__(self, parser, cfg, values, option_string=None):
            inline = isinstance(values, str) and not os.path.exists(values) and (":" in values or "{" in values)
            if isinstance(values, str) and not inline:
                read_yaml(values)
            return super().__call__(parser, cfg, values, option_string)

    return StrictConfigFile


def _instantiate(command: Command, values: dict[str, Any]) -> list[Any]:
    values.pop(CONFIG_FLAG, None)
    values.pop("__path__", None)
    option_names = {f.name for f in dataclasses.fields(command.options)}
    built = [parse(command.options, {k: v for k, v in values.items() if k in option_names}, source="options")]
    if command.config is not None:
        built.append(parse(command.config, {k: v for k, v in values.items() if k not in option_names}, source="config"))
    return built


def _field_help(cls: type, name: str) -> str:
    import docstring_parser

    params = docstring_parser.parse(cls.__doc__ or "").params
    return next((p.description or "" for p in params if p.arg_name == name), "")
