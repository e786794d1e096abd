"""Options declared once: a typed dataclass field with its default and its help is the whole
declaration, and jsonargparse derives the rest from it.

Every stage's configuration is a (nested) dataclass whose docstring ``Attributes:`` (or ``Args:``)
section holds the help text. From that one declaration come

* validation of a mapping (:func:`parse`): types, ``Literal`` choices, nested sections, unknown keys
  and the dataclass's own ``__post_init__`` checks, each failure one line naming the source, the key,
  the value and what was expected;
* YAML files with dotted overrides (:func:`load_config`): defaults, then the file, then
  ``{"model.hidden": 256}``; a key given twice in one file is an error, not "last one wins";
* command-line flags (:mod:`dgnode.cli`): ``--optim.lr 3e-4``, ``--config FILE``, ``--help`` with
  every option and its default;
* a search space's keys (:mod:`dgnode.tuning.space`): the same dotted names.

jsonargparse (the library behind LightningCLI) is used rather than tyro because it merges YAML
files, dotted flags and defaults in one parser and validates nested dataclasses from plain mappings,
which is what a search space or a saved ``config.yaml`` needs; tyro builds only from the command line.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
from argparse import ArgumentError
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

from dgnode.errors import DgnodeError

os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")

T = TypeVar("T")

__all__ = [
    "ConfigError",
    "check_finite",
    "dump_yaml",
    "explain_error",
    "flatten",
    "load_config",
    "parse",
    "read_yaml",
    "replace_dotted",
    "set_dotted",
    "to_dict",
]


class ConfigError(DgnodeError, ValueError):
    """A configuration that does not fit its dataclass: unknown key, wrong type, bad value."""


def parse(cls: type[T], data: Mapping[str, Any] | None, source: str = "config", prefix: str = "") -> T:
    """Validate ``data`` against dataclass ``cls`` (defaults fill what it omits) and build it."""
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {prefix or 'config'} must be a mapping, got {data!r}")
    _check_keys(cls, data, source, prefix)
    parser = _parser(cls)
    try:
        namespace = parser.parse_object({"c": dict(data)})
        return parser.instantiate(namespace).c
    except ConfigError as error:
        # A nested section's own error (a model section, validated by its registry) gets the file.
        raise error if str(error).startswith(source) else ConfigError(f"{source}: {error}") from None
    except (ArgumentError, TypeError, ValueError, KeyError) as error:
        raise ConfigError(f"{source}: {explain_error(error, prefix)}") from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML file; a missing, non-UTF-8 or malformed file, a top level that is not
    a mapping and a key given twice are :class:`ConfigError` naming the file (and line)."""
    try:
        text = _read_text(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start}): save the file as UTF-8") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config file ({error.strerror})") from None
    try:
        loaded = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(loaded).__name__}")
    return loaded


def load_config(cls: type[T], path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> T:
    """Build ``cls`` from its defaults, the YAML mapping at ``path``, then dotted ``overrides``."""
    data = read_yaml(path) if path is not None else {}
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value)
    return parse(cls, data, source=str(path) if path is not None else "config")


def to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict of a dataclass config (for YAML, JSON and MLflow params)."""
    return dataclasses.asdict(config)


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"hidden": 512}}`` -> ``{"model.hidden": 512}``."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def replace_dotted(config: T, updates: Mapping[str, Any], source: str = "overrides") -> T:
    """A copy of ``config`` with dotted keys replaced, validated like a file."""
    data = to_dict(config)
    for key, value in updates.items():
        set_dotted(data, key, value)
    return parse(type(config), data, source=source)


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """``data["a"]["b"] = value`` for ``key="a.b"``, creating sections on the way."""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {key}: {part} is a value, not a section")
        node = child
    node[parts[-1]] = value


def dump_yaml(config: Any, path: Any) -> None:
    """Write ``config`` as YAML to a local path or an ``s3://`` URI (atomically, either way)."""
    from dgnode.storage import resolve

    resolve(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


def _read_text(path: Any) -> str:
    # Configs and search spaces may live beside the runs in object storage (a resumed search
    # reads its copy of the space from there); local files are read as before.
    if str(path).startswith("s3://") or not isinstance(path, (str, Path)):
        from dgnode.storage import resolve

        return resolve(path).read_text()
    return Path(path).read_text(encoding="utf-8")


# -- internals ---------------------------------------------------------------------------------
class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping key given twice (PyYAML silently keeps the last)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} given twice (lines {seen[key]} and {line}): keep one", key_node.start_mark)
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


@functools.lru_cache(maxsize=None)
def _parser(cls: type):
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(cls, "c")
    return parser


def _check_keys(cls: type, data: Mapping[str, Any], source: str, prefix: str) -> None:
    """Unknown keys, named with the valid ones (jsonargparse's own message names neither well)."""
    from typing import get_type_hints

    hints = get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(str(k) for k in data if k not in fields)
    where = f"{prefix}." if prefix else ""
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(where + k for k in unknown)}; "
            f"valid keys{' under ' + prefix if prefix else ''}: {', '.join(sorted(fields))}"
        )
    for name, value in data.items():
        hint = hints.get(name)
        if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
            _check_keys(hint, value, source, f"{where}{name}")


_TYPE_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
               "list": "a list", "dict": "a mapping", "tuple": "a list"}


def explain_error(error: Exception, prefix: str = "") -> str:
    """One line from jsonargparse's multi-line message: ``key: expected X, got V``."""
    text = str(error)
    match = re.search(r'Parser key "c\.([^"]+)":\s*(?:.*?)Expected a (.+?)\. Got value: (.*)', text, re.S)
    if match is None:
        return " ".join(text.replace('"c.', '"').split())
    key, expected, value = match.group(1), match.group(2).strip(), match.group(3).strip().splitlines()[0]
    key = f"{prefix}.{key}" if prefix else key
    literal = re.fullmatch(r"typing\.Literal\[(.*)\]", expected)
    if literal:
        words = f"one of {literal.group(1)}"
    else:
        name = re.sub(r"^<class '(?:builtins\.)?(.+)'>$", r"\1", expected)
        words = _TYPE_WORDS.get(name.split("[")[0], name)
    return f"{key}: expected {words}, got {value!r}"


def check_finite(section: str, **values: float | None) -> None:
    """``ValueError`` naming ``section.key`` when a number is NaN or infinite (YAML's ``.nan``)."""
    for key, value in values.items():
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{section}.{key} must be a finite number, got {value}")
