"""What a causal study trains: models x modes x seeds, each a full :class:`TrainConfig`.

Modes:

* ``offline``: the model's default window, looking at past and future context (``wf > 0`` or
  unlimited, bidirectional encoders, unmasked attention);
* ``causal``: ``wf = 0`` (forward-only encoders, causally masked attention): the real-time model.

How a mode maps onto a model config (:func:`apply_mode`): a config with a ``wf`` field gets
``wf = 0`` (causal) or keeps its own non-zero ``wf`` (offline; a ``wf = 0`` from the file is
replaced by the class default); a config with a ``causal`` flag (``bigru``) gets it set;
context-free models (``mlp``) are the same in both modes.

Configs come from ``config_dir`` (``{model}_{profile}.yaml``, ``{model}.yaml``,
``baseline_{model}.yaml``...; see :func:`model_config_path`) or the registry defaults, then the
``overrides`` (``{"train.epochs": 5}`` for every model, ``{"corect:model.hidden": 64}`` for one
model's runs), then the mode, the seed and the store.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dgnode.errors import InputError
from dgnode.options import ConfigError, flatten
from dgnode.streaming.causal import CONTEXT_FREE_MODELS

__all__ = ["MODES", "StudyRun", "StudySpec", "apply_mode", "build_runs", "model_config_path"]

MODES = ("offline", "causal")
Runner = Literal["auto", "local", "ray"]


@dataclass
class StudySpec:
    """Train models x {offline, causal} x seeds, then compare them with paired t-tests.

    Attributes:
        store: the feature store every run trains on (a path every node can read)
        models: registered model names, e.g. [dgode,corect]
        out: output directory: runs/, study.md, study.csv, study_tests.csv, study_runs.csv
        modes: a subset of [offline,causal]
        seeds: runs per model and mode; seeds first_seed .. first_seed + seeds - 1, the same for
            every (model, mode) so runs pair up by seed in the t-tests
        first_seed: the first seed
        config_dir: directory of YAML configs {model}_{profile}.yaml, {model}.yaml or
            baseline_{model}.yaml (default: the registry's defaults)
        profile: config suffix to pick, e.g. fast -> dgode_fast.yaml, corect_fast.yaml
        overrides: train-config keys for every run ({train.epochs: 5}) or, prefixed with a model
            name, for one model's runs ({corect:model.hidden: 64})
        runner: local (one run after another), ray (Ray tasks) or auto (Ray when it is
            initialised or RAY_ADDRESS is set, else local)
        cpus_per_run: CPUs (and torch threads) of each Ray task
        reuse: keep finished runs whose config is unchanged instead of training them again
    """

    store: str
    models: list[str]
    out: str
    modes: list[str] = field(default_factory=lambda: list(MODES))
    seeds: int = 3
    first_seed: int = 0
    config_dir: str | None = None
    profile: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    runner: Runner = "auto"
    cpus_per_run: int = 1
    reuse: bool = True

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("a study needs at least one model")
        if self.profile is not None and self.config_dir is None:
            # Without a directory the profile would pick nothing and every run would silently
            # train the registry's defaults (paper sizes) instead of the profile's configs.
            raise ConfigError(f"profile {self.profile!r} needs config_dir (e.g. --config_dir configs) to pick "
                              f"{{model}}_{self.profile}.yaml from")
        if len(set(self.models)) != len(self.models):
            raise ConfigError(f"models repeat a name: {self.models}")
        unknown = [m for m in self.modes if m not in MODES]
        if unknown or not self.modes:
            raise ConfigError(f"modes must be a non-empty subset of {list(MODES)}, got {self.modes}")
        if len(set(self.modes)) != len(self.modes):
            raise ConfigError(f"modes repeat a name: {self.modes}")
        if self.seeds < 1:
            raise ConfigError(f"seeds must be >= 1, got {self.seeds}")
        if self.runner not in ("auto", "local", "ray"):
            raise ConfigError(f"runner must be auto, local or ray, got {self.runner!r}")
        if self.cpus_per_run < 1:
            raise ConfigError(f"cpus_per_run must be >= 1, got {self.cpus_per_run}")
        # A YAML file may nest the keys ({train: {epochs: 5}}): one dotted key each.
        self.overrides = flatten(self.overrides)
        for key in self.overrides:
            _split_key(key, self.models)

    @property
    def seed_values(self) -> list[int]:
        return list(range(self.first_seed, self.first_seed + self.seeds))


@dataclass
class StudyRun:
    """One training run of the study."""

    model: str
    mode: str
    seed: int
    config: Any  # TrainConfig
    run_dir: Path | str  # an absolute local path, or an s3:// URI when the study's out is one
    config_source: str

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.model, self.mode, self.seed)


def _split_key(key: str, models: list[str]) -> tuple[str | None, str]:
    """``"corect:model.hidden"`` -> ``("corect", "model.hidden")``; ``"train.epochs"`` -> ``(None, "train.epochs")``."""
    if ":" not in key:
        return None, key
    model, rest = key.split(":", 1)
    if model not in models:
        raise ConfigError(f"override {key!r} names model {model!r}, which is not in the study {models}")
    if not rest:
        raise ConfigError(f"override {key!r}: expected model:key, e.g. {model}:model.hidden")
    return model, rest


def model_config_path(config_dir: str | Path, model: str, profile: str | None) -> Path:
    """The YAML config of ``model`` in ``config_dir``, the first that exists of
    ``{model}_{profile}.yaml`` and ``baseline_{model}_{profile}.yaml`` (with a profile),
    ``{model}.yaml`` and ``baseline_{model}.yaml``, else the only ``{model}_*.yaml`` when no
    profile is given; an error lists what was tried and what exists. (A baseline with one
    generic config thus serves every profile; the study report names the file each model used.)"""
    directory = Path(config_dir)
    if not directory.is_dir():
        raise InputError("config directory not found", path=str(directory))
    candidates = [directory / f"{model}_{profile}.yaml", directory / f"baseline_{model}_{profile}.yaml"] if profile else []
    candidates += [directory / f"{model}.yaml", directory / f"baseline_{model}.yaml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    matching = sorted(p.name for p in directory.glob(f"{model}_*.yaml"))
    if profile is None and len(matching) == 1:
        return directory / matching[0]
    tried = ", ".join(c.name for c in candidates)
    if matching:
        profiles = "|".join(name[len(model) + 1 : -len(".yaml")] for name in matching)
        raise InputError(
            f"no config for model {model!r} (tried {tried}); it has {', '.join(matching)}: pick one with --profile {profiles}",
            path=str(directory),
        )
    raise InputError(f"no config for model {model!r} (tried {tried})", path=str(directory))


def apply_mode(model_config: Any, mode: str) -> Any:
    """A copy of ``model_config`` in ``mode`` (see the module docstring), re-validated."""
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; expected one of {list(MODES)}")
    names = {f.name: f for f in dataclasses.fields(model_config)}
    try:
        if "wf" in names:
            if mode == "causal":
                return dataclasses.replace(model_config, wf=0)
            if model_config.wf != 0:
                return dataclasses.replace(model_config)
            default = names["wf"].default
            return dataclasses.replace(model_config, wf=default if default not in (0, dataclasses.MISSING) else -1)
        if "causal" in names:
            return dataclasses.replace(model_config, causal=mode == "causal")
    except ValueError as error:
        raise ConfigError(f"model {model_config.name!r} in {mode} mode: {error}") from None
    if model_config.name in CONTEXT_FREE_MODELS:
        return dataclasses.replace(model_config)
    raise ConfigError(f"model {model_config.name!r} has neither a wf window nor a causal flag: no {mode} mode to set")


def build_runs(spec: StudySpec) -> list[StudyRun]:
    """Every (model, mode, seed) run of ``spec`` with its validated config, in table order."""
    from dgnode.training.config import load_train_config

    from dgnode.storage import resolve

    runs = []
    # Absolute: Ray tasks write their runs from other working directories (or nodes); an s3://
    # out is what every node reaches.
    out = resolve(spec.out)
    for model in spec.models:
        path: Path | None = None
        if spec.config_dir is not None:
            path = model_config_path(spec.config_dir, model, spec.profile)
        own = {}
        for key, value in spec.overrides.items():
            name, rest = _split_key(key, spec.models)
            if name in (None, model):
                own[rest] = value
        for mode in spec.modes:
            for seed in spec.seed_values:
                # Plots off by default (t-SNE per run is slow); an override may turn them on.
                overrides: dict[str, Any] = {"report.plots": False}
                if path is None:
                    overrides["model.name"] = model
                overrides.update(own)
                overrides.update({"data.store": spec.store, "train.seed": seed})
                config = load_train_config(path, overrides)
                if config.model.name != model:
                    raise ConfigError(f"{path}: model.name is {config.model.name!r}, the study asked for {model!r}")
                config.model = apply_mode(config.model, mode)
                runs.append(
                    StudyRun(
                        model=model,
                        mode=mode,
                        seed=seed,
                        config=config,
                        run_dir=_run_dir(out, f"{model}-{mode}-seed{seed}"),
                        config_source=str(path) if path is not None else "registry defaults",
                    )
                )
    return runs


def _run_dir(out: Any, name: str) -> Path | str:
    where = out / "runs" / name
    return where.uri if where.is_remote else where.local_path()
