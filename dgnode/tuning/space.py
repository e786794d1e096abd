"""Search spaces in YAML: which config keys a search varies, over which distributions.

A search space file maps flattened config keys (as in ``key.sub=value`` overrides) to either a
plain value (fixed for every trial) or a one-key mapping naming a distribution::

    params:
      model.solver: {choice: [dopri5, rk4, euler, midpoint, bosh3]}
      model.rtol: {loguniform: [1.0e-5, 1.0e-2]}     # log-uniform on [low, high]
      model.T: {uniform: [0.5, 2.0]}
      model.hops: {int: [1, 4]}                      # integers low..high, both included
      train.batch_size: {logint: [4, 32]}            # log-uniform integers, both included
      model.adjoint: false                           # a plain value: fixed
    points_to_evaluate:                              # optional: configurations tried first,
      - {model.solver: dopri5, model.rtol: 1.0e-3,   # a value for every searched key
         model.T: 1.0, model.hops: 3, train.batch_size: 16}

Every key and every value a distribution can produce (each choice, both ends of a range) is
checked against the training config, so a typo or an ill-typed bound is reported with the file,
line and key before any trial starts. A point to evaluate names a value, inside its
distribution, for every searched key (Ray's OptunaSearch warm-starts from complete points only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from dgnode.options import ConfigError, replace_dotted
from dgnode.errors import InputError

if TYPE_CHECKING:
    from dgnode.storage import Location

__all__ = ["DISTRIBUTIONS", "Distribution", "SearchSpace", "TOP_LEVEL_KEYS", "load_search_space"]

DISTRIBUTIONS = ("choice", "uniform", "loguniform", "int", "logint")
TOP_LEVEL_KEYS = ("params", "points_to_evaluate")


@dataclass(frozen=True)
class Distribution:
    """One searched key: ``kind`` in :data:`DISTRIBUTIONS` and its arguments.

    ``choice``: ``values`` (any YAML scalars). ``uniform``/``loguniform``: floats
    ``low <= x <= high``. ``int``/``logint``: integers ``low <= n <= high`` (both included).
    """

    kind: str
    values: tuple[Any, ...] = ()
    low: float | int | None = None
    high: float | int | None = None

    def candidates(self) -> list[Any]:
        """Values that must all be valid config values (choices, or the two ends of a range)."""
        return list(self.values) if self.kind == "choice" else [self.low, self.high]

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return any(_same_value(value, v) for v in self.values)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind in ("int", "logint") and float(value) != int(value):
            return False
        return self.low <= value <= self.high

    def to_tune(self):
        """The Ray Tune domain (``tune.choice`` ...); integer upper bounds become exclusive there."""
        from ray import tune

        if self.kind == "choice":
            return tune.choice(list(self.values))
        if self.kind == "uniform":
            return tune.uniform(self.low, self.high)
        if self.kind == "loguniform":
            return tune.loguniform(self.low, self.high)
        if self.kind == "int":
            return tune.randint(self.low, self.high + 1)
        return tune.lograndint(self.low, self.high + 1)

    def describe(self) -> str:
        if self.kind == "choice":
            return "choice of " + ", ".join(map(str, self.values))
        return f"{self.kind} [{self.low}, {self.high}]"


@dataclass
class SearchSpace:
    """A parsed search space: ``searched`` keys with distributions, ``fixed`` keys with values."""

    searched: dict[str, Distribution]
    fixed: dict[str, Any]
    points_to_evaluate: list[dict[str, Any]] = field(default_factory=list)
    path: str = "<search space>"

    def tune_param_space(self) -> dict[str, Any]:
        """The Tune ``param_space``: searched keys only (fixed ones are applied by :meth:`config_for`)."""
        return {key: dist.to_tune() for key, dist in self.searched.items()}

    def config_for(self, base_config: Any, sampled: dict[str, Any]) -> Any:
        """``base_config`` with the fixed values and one trial's sampled values applied."""
        unknown = sorted(set(sampled) - set(self.searched))
        if unknown:
            raise ConfigError(f"{self.path}: sampled keys {unknown} are not in the search space")
        return replace_dotted(base_config, {**self.fixed, **{k: _plain(v) for k, v in sampled.items()}})


def load_search_space(path: "str | Path | Location", base_config: Any) -> SearchSpace:
    """Read and validate a search space file (a local path or an ``s3://`` URI, such as a
    search's own copy) against ``base_config`` (a config dataclass).

    Errors are :class:`dgnode.errors.InputError` naming the file, the line and the key.
    """
    from dgnode.storage import resolve

    try:
        text = resolve(path).read_text()
    except FileNotFoundError:
        raise InputError("search space file not found", path=str(path)) from None
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise InputError(f"not valid YAML: {getattr(error, 'problem', error)}", path=str(path),
                         line=mark.line + 1 if mark else None) from None
    lines = _key_lines(root)
    if not isinstance(data, dict):
        raise InputError(f"expected a mapping with {' and '.join(TOP_LEVEL_KEYS)}, got {type(data).__name__}", path=str(path), line=1)
    unknown = sorted(set(data) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise InputError(f"unknown top-level key(s) {unknown}; expected {list(TOP_LEVEL_KEYS)}", path=str(path),
                         line=lines.get((unknown[0],)))
    params = data.get("params")
    if not isinstance(params, dict) or not params:
        raise InputError("'params' must be a non-empty mapping of config keys to values or distributions",
                         path=str(path), line=lines.get(("params",), 1))

    searched: dict[str, Distribution] = {}
    fixed: dict[str, Any] = {}
    for key, spec in params.items():
        line = lines.get(("params", key))
        where = f"params.{key}"
        if not isinstance(key, str) or not key.strip():
            raise InputError(f"{where}: keys must be dotted config keys such as model.rtol", path=str(path), line=line)
        if isinstance(spec, dict):
            searched[key] = _parse_distribution(spec, where, str(path), line)
        elif isinstance(spec, list):
            raise InputError(f"{where}: a plain list is ambiguous; write {{choice: {spec}}} to search over it",
                             path=str(path), line=line)
        else:
            fixed[key] = spec

    # Validate against the config: every key must exist and every reachable value must fit.
    for key, value in fixed.items():
        _check_value(base_config, key, value, str(path), lines.get(("params", key)))
    for key, dist in searched.items():
        for value in dist.candidates():
            _check_value(base_config, key, value, str(path), lines.get(("params", key)))
    try:
        replace_dotted(base_config, fixed)
    except ConfigError as error:
        raise InputError(f"the fixed values together do not make a valid config: {error}", path=str(path)) from None

    points = data.get("points_to_evaluate") or []
    if not isinstance(points, list):
        raise InputError("'points_to_evaluate' must be a list of mappings", path=str(path),
                         line=lines.get(("points_to_evaluate",)))
    for index, point in enumerate(points):
        line = lines.get(("points_to_evaluate", index))
        if not isinstance(point, dict) or not point:
            raise InputError(f"points_to_evaluate[{index}]: expected a non-empty mapping of searched keys to values",
                             path=str(path), line=line)
        missing = [k for k in searched if k not in point]
        if missing:
            # Ray's OptunaSearch warm-starts only from complete points.
            raise InputError(f"points_to_evaluate[{index}]: give a value for every searched key; missing {', '.join(missing)}",
                             path=str(path), line=line)
        for key, value in point.items():
            if key not in searched:
                raise InputError(
                    f"points_to_evaluate[{index}].{key}: not a searched key (searched: {', '.join(searched) or 'none'})",
                    path=str(path), line=line)
            if not searched[key].contains(value):
                raise InputError(
                    f"points_to_evaluate[{index}].{key}: {value!r} is outside {searched[key].describe()}",
                    path=str(path), line=line)
    return SearchSpace(searched=searched, fixed=fixed, points_to_evaluate=[dict(p) for p in points], path=str(path))


def _parse_distribution(spec: dict, where: str, path: str, line: int | None) -> Distribution:
    if len(spec) != 1:
        raise InputError(f"{where}: a distribution is a mapping with exactly one of {', '.join(DISTRIBUTIONS)}; "
                         f"got keys {sorted(map(str, spec))}", path=path, line=line)
    (kind, args), = spec.items()
    if kind not in DISTRIBUTIONS:
        raise InputError(f"{where}: unknown distribution {kind!r}; expected one of {', '.join(DISTRIBUTIONS)}",
                         path=path, line=line)
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise InputError(f"{where}: choice needs a non-empty list of values, got {args!r}", path=path, line=line)
        if any(isinstance(v, (dict, list)) for v in args):
            raise InputError(f"{where}: choice values must be scalars, got {args!r}", path=path, line=line)
        if len({repr(v) for v in args}) != len(args):
            raise InputError(f"{where}: choice repeats a value: {args!r}", path=path, line=line)
        return Distribution(kind, values=tuple(args))
    if not isinstance(args, list) or len(args) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in args):
        raise InputError(f"{where}: {kind} needs [low, high] as two numbers, got {args!r}", path=path, line=line)
    low, high = args
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise InputError(f"{where}: {kind} needs finite low < high, got [{low}, {high}]", path=path, line=line)
    if kind.startswith("log") and low <= 0:
        raise InputError(f"{where}: {kind} needs low > 0 (it samples the logarithm), got {low}", path=path, line=line)
    if kind in ("int", "logint"):
        if not all(isinstance(v, int) or float(v).is_integer() for v in args):
            raise InputError(f"{where}: {kind} bounds must be integers, got [{low}, {high}]", path=path, line=line)
        return Distribution(kind, low=int(low), high=int(high))
    return Distribution(kind, low=float(low), high=float(high))


def _check_value(base_config: Any, key: str, value: Any, path: str, line: int | None) -> None:
    try:
        replace_dotted(base_config, {key: value})
    except ConfigError as error:
        # replace_dotted's message starts with its own source ("overrides: ..."): keep the reason.
        reason = str(error).removeprefix("overrides: ").removeprefix(f"{key}: ")
        raise InputError(f"params.{key}: {reason}", path=path, line=line) from None


def _key_lines(root: yaml.Node | None) -> dict[tuple, int]:
    """1-based line of each mapping key / sequence item, addressed by its path of keys."""
    lines: dict[tuple, int] = {}

    def walk(node: yaml.Node, prefix: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = _scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else repr(key_node.value)
                lines[prefix + (key,)] = key_node.start_mark.line + 1
                walk(value_node, prefix + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines[prefix + (index,)] = item.start_mark.line + 1
                walk(item, prefix + (index,))

    if root is not None:
        walk(root, ())
    return lines


def _scalar(node: yaml.ScalarNode) -> Any:
    return yaml.safe_load(yaml.serialize(node))


def _same_value(a: Any, b: Any) -> bool:
    # YAML's true == 1 must not make a boolean choice accept an integer point (or vice versa).
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


def _plain(value: Any) -> Any:
    """numpy scalars from a searcher -> Python scalars (configs and MLflow params want plain types)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (list, dict, str)) else value
