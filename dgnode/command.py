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

__all__ = ["Command", "build_parser", "config_class", "run_command"]

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


def build_parser(commands: Iterable[Command], prog: str = "dgnode", description: str = "", argv: Sequence[str] = ()):
    """A jsonargparse parser with one subcommand per :class:`Command` (``argv`` picks the shape of
    a config whose shape depends on a value, see :func:`config_class`)."""
    from jsonargparse import ArgumentParser

    root = ArgumentParser(prog=prog, description=description, exit_on_error=False)
    top = root.add_subcommands(dest="command", required=True)
    children: dict[str, list[Command]] = {}
    for command in commands:
        head, _, tail = command.name.partition(" ")
        if tail:
            children.setdefault(head, []).append(command)
        else:
            top.add_subcommand(head, _command_parser(command, f"{prog} {head}", argv), help=command.help)
    for head, members in children.items():
        group = ArgumentParser(prog=f"{prog} {head}", exit_on_error=False)
        # jsonargparse wants a level attached to its parent before it gets subcommands of its own.
        top.add_subcommand(head, group, help=", ".join(c.name.partition(" ")[2] for c in members))
        sub = group.add_subcommands(dest="subcommand", required=True)
        for command in members:
            tail = command.name.partition(" ")[2]
            sub.add_subcommand(tail, _command_parser(command, f"{prog} {command.name}", argv), help=command.help)
    return root


def config_class(command: Command, argv: Sequence[str]) -> type | None:
    """The config class the command's flags come from. A config class with a
    ``specialise(values) -> type`` classmethod gets the values of its ``SPECIALISE_KEYS`` (from
    ``--config`` files and flags in ``argv``) and returns the class to use: the training config's
    ``model`` section becomes the dataclass of ``model.name``, so ``--model.ode.method rk4`` is a
    typed flag and ``--help`` lists that model's options."""
    config = command.config
    if config is None or not hasattr(config, "specialise"):
        return config
    from dgnode.options import read_yaml, set_dotted

    values: dict[str, Any] = {}
    args = list(argv)
    for index, arg in enumerate(args):
        flag, _, inline = arg.partition("=")
        value = inline if inline else (args[index + 1] if index + 1 < len(args) else "")
        if flag == f"--{CONFIG_FLAG}" and value:
            try:
                values = read_yaml(value)
            except ConfigError:
                pass  # jsonargparse reports the file itself
        elif flag.startswith("--") and flag[2:] in config.SPECIALISE_KEYS and value:
            set_dotted(values, flag[2:], value)
    return config.specialise(values)


def run_command(commands: Sequence[Command], argv: Sequence[str] | None, prog: str = "dgnode",
                description: str = "") -> int:
    """Parse ``argv``, build the options (and config), run the handler; a bad value or a
    :class:`DgnodeError` is one ``PROG: error: ...`` line on stderr and the error's exit code
    (2 for bad input, 1 for an :class:`~dgnode.errors.EnvironmentFault`)."""
    by_name = {c.name: c for c in commands}
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        parser = build_parser(commands, prog, description, argv)
        namespace = parser.parse_args(argv)
        name = namespace.command
        values = namespace[name]
        if name not in by_name:
            name = f"{name} {values.subcommand}"
            values = values[values.subcommand]
        command = by_name[name]
        return int(command.handler(*_instantiate(command, values.as_dict(), config_class(command, argv))) or 0)
    except (ArgumentError, ConfigError, DgnodeError) as error:
        message = explain_error(error) if isinstance(error, ArgumentError) else str(error)
        if message.startswith("unrecognized arguments:"):
            message = _unknown_flags(by_name, argv, message)
        print(f"{prog}: error: {message}", file=sys.stderr)
        return getattr(error, "exit_code", 2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def _unknown_flags(by_name: dict[str, Command], argv: list[str], message: str) -> str:
    """``unknown key(s) model.hiden; valid keys under model: ...`` for a dotted flag that names no
    option, like a misspelt key in a YAML file."""
    command = by_name.get(" ".join(argv[:2])) or by_name.get(argv[0] if argv else "")
    if command is None:
        return message
    classes = [command.options] + ([config_class(command, argv)] if command.config is not None else [])
    for flag in message.split(":", 1)[1].split():
        key = flag.lstrip("-").split("=", 1)[0]
        section = key.rpartition(".")[0]
        for cls in classes:
            node = cls
            for part in section.split(".") if section else []:
                hint = get_type_hints(node).get(part) if dataclasses.is_dataclass(node) else None
                node = hint if dataclasses.is_dataclass(hint) else None
                if node is None:
                    break
            if node is not None and dataclasses.is_dataclass(node):
                valid = ", ".join(sorted(f.name for f in dataclasses.fields(node)))
                where = f" under {section}" if section else ""
                return f"unknown key(s) {key}; valid keys{where}: {valid} (see --help)"
    return message


def _command_parser(command: Command, prog: str, argv: Sequence[str]):
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
        # Only the command being run is specialised: `dgnode --help` stays free of model imports.
        chosen = " ".join(argv[:len(command.name.split())]) == command.name
        parser.add_class_arguments(config_class(command, argv) if chosen else command.config, None, sub_configs=True)
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


def _instantiate(command: Command, values: dict[str, Any], config: type | None) -> list[Any]:
    values.pop(CONFIG_FLAG, None)
    values.pop("__path__", None)
    option_names = {f.name for f in dataclasses.fields(command.options)}
    built = [parse(command.options, {k: v for k, v in values.items() if k in option_names}, source="options")]
    if config is not None:
        made = parse(config, {k: v for k, v in values.items() if k not in option_names}, source="config")
        if config is not command.config:
            # Hand on the declared class: a specialised one is made at run time and does not pickle.
            made = command.config(**{f.name: getattr(made, f.name) for f in dataclasses.fields(command.config)})
        built.append(made)
    return built


def _field_help(cls: type, name: str) -> str:
    import docstring_parser

    params = docstring_parser.parse(cls.__doc__ or "").params
    return next((p.description or "" for p in params if p.arg_name == name), "")
