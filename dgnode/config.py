"""Dataclass configs loaded from YAML with ``key.sub=value`` overrides, validated with clear errors.

Every stage's configuration is a (nested) dataclass. :func:`load_config` builds one from
defaults, then a YAML file, then command-line overrides, in that order, and rejects unknown keys
and ill-typed values with a message that names the key (and the file)::

    cfg = load_config(TrainConfig, "configs/dgode_iemocap.yaml", ["model.hidden=256", "optim.lr=3e-4"])

Values of overrides are parsed as YAML scalars (``true``, ``1e-4``, ``[1, 2]``, ``null``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from dgnode.errors import DgnodeError

T = TypeVar("T")


class ConfigError(DgnodeError, ValueError):
    """A configuration that does not fit its dataclass: unknown key, wrong type, bad value."""


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Build ``cls`` from its defaults, the YAML mapping at ``path``, then ``overrides``."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML: {error}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level, got {type(loaded).__name__}")
        data = loaded
    for override in overrides or []:
        key, value = parse_override(override)
        _set_dotted(data, key, value)
    return from_dict(cls, data, source=source)


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key.sub=value`` and parse the value as a YAML scalar or flow collection."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value, e.g. model.hidden=256")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):
        # YAML 1.1 reads "1e-4" (no dot) as a string; users mean the number.
        try:
            value = float(value) if value.strip().lower() not in ("nan", "inf", "-inf", "infinity") else value
        except ValueError:
            pass
    return key, value


def from_dict(cls: type[T], data: dict[str, Any], source: str = "config", prefix: str = "") -> T:
    """Validate ``data`` against dataclass ``cls`` recursively; unknown keys are errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix or 'config'} must be a mapping, got {data!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(where + k for k in unknown)}; "
            f"valid keys{' under ' + prefix if prefix else ''}: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _coerce(hints[name], value, key, source)
    try:
        instance = cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{source}: {prefix or cls.__name__}: {error}") from None
    return instance


def to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict of a dataclass config (for YAML, JSON and MLflow params)."""
    return dataclasses.asdict(config)


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"hidden": 512}}`` -> ``{"model.hidden": 512}``."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def replace_dotted(config: T, updates: dict[str, Any]) -> T:
    """A copy of ``config`` with dotted keys replaced, validated like a file."""
    data = to_dict(config)
    for key, value in updates.items():
        _set_dotted(data, key, value)
    return from_dict(type(config), data, source="overrides")


def dump_yaml(config: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False), encoding="utf-8")


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {key}: {part} is a value, not a section")
        node = child
    node[parts[-1]] = value


def _coerce(hint: Any, value: Any, key: str, source: str) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, key, source)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if errors else f"{source}: {key}: invalid value {value!r}")
    if origin is typing.Literal:
        allowed = get_args(hint)
        if value not in allowed:
            raise ConfigError(f"{source}: {key}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")
        return value
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value if value is not None else {}, source=source, prefix=key)
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key}: expected a list, got {value!r}")
        (item,) = get_args(hint)[:1] or (Any,)
        items = [_coerce(item, v, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key}: expected a mapping, got {value!r}")
        _, item = get_args(hint) or (Any, Any)
        return {k: _coerce(item, v, f"{key}.{k}", source) for k, v in value.items()}
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: {key}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{source}: {key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool):
            raise ConfigError(f"{source}: {key}: expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{source}: {key}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{source}: {key}: expected a string, got {value!r}")
    return value
