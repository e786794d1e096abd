"""What a causal study trains: models x modes x seeds, each a full :class:`TrainConfig`.

Modes:

* ``offline``: the model's default window, looking at past and future context (``wf > 0`` or
  unlimited, bidirectional encoders, unmasked attention);
* ``causal``: ``wf = 0`` (forward-only encoders, causally masked attention): the real-time model.

How a mode maps onto a model config (:func:`apply_mode`): a config with a ``wf`` field gets
``wf = 0`` (causal) or keeps its own non-zero ``wf`` (offline; a ``wf = 0`` from the file is
replaced by the class default); a config with a ``causal`` flag (``bigru``) gets it set;
context-free models (``mlp``) are the same in both modes.

Configs come from ``--config-dir`` (``{model}_{profile}.yaml``, ``{model}.yaml``,
``baseline_{model}.yaml``...; see :func:`model_config_path`) or the registry defaults, then the
``--set`` overrides (``key=value`` for every model, ``model:key=value`` for one), then the mode,
the seed and the store.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dgnode.options import ConfigError
from dgnode.errors import InputError

MODES = ("offline", "causal")
CONTEXT_FREE_MODELS = ("mlp",)
Runner = Literal["auto", "local", "ray"]


@dataclass
class StudySpec:
    """A study: every model in every mode, each trained with ``seeds`` seeds.

    Attributes:
        store: the feature store every run trains on.
        models: registered model names (``model.name``).
        modes: a subset of :data:`MODES`.
        seeds: runs per (model, mode); seeds ``first_seed .. first_seed + seeds - 1``, the same
            for every (model, mode) so runs pair up by seed in the t-tests.
        out: output directory (``runs/``, ``study.md``, ``study.csv``...).
        config_dir, profile: where the per-model YAML configs are (see module docstring).
        overrides: ``key=value`` for every run or ``model:key=value`` for one model's runs.
        runner: ``local`` (one after another in this process), ``ray`` (Ray tasks) or
            ``auto`` (Ray when it is initialised or ``RAY_ADDRESS`` is set, else local).
        cpus_per_run: CPUs (and torch threads) of each Ray task.
        reuse: keep finished runs whose config is unchanged instead of training them again.
    """

    store: str
    models: list[str]
    out: str
    modes: list[str] = field(default_factory=lambda: list(MODES))
    seeds: int = 3
    first_seed: int = 0
    config_dir: str | None = None
    profile: str | None = None
    overrides: list[str] = field(default_factory=list)
    runner: Runner = "auto"
    cpus_per_run: int = 1
    reuse: bool = True

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("a study needs at least one model")
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
        for override in self.overrides:
            split_override(override, self.models)

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
    run_dir: Path
    config_source: str

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.model, self.mode, self.seed)


def split_override(override: str, models: list[str]) -> tuple[str | None, str]:
    """``"corect:model.hidden=64"`` -> ``("corect", "model.hidden=64")``; ``"k=v"`` -> ``(None, "k=v")``."""
    if "=" not in override:
        raise ConfigError(f"override {override!r}: expected key=value or model:key=value")
    head = override.split("=", 1)[0]
    if ":" in head:
        model, rest = override.split(":", 1)
        if model not in models:
            raise ConfigError(f"override {override!r} names model {model!r}, which is not in the study {models}")
        return model, rest
    return None, override


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

    runs = []
    # Absolute: Ray tasks write their runs from other working directories (or nodes).
    out = Path(spec.out).resolve()
    for model in spec.models:
        path: Path | None = None
        if spec.config_dir is not None:
            path = model_config_path(spec.config_dir, model, spec.profile)
        own = [rest for name, rest in (split_override(o, spec.models) for o in spec.overrides) if name in (None, model)]
        for mode in spec.modes:
            for seed in spec.seed_values:
                # Plots off by default (t-SNE per run is slow); an override may turn them on.
                overrides = ["report.plots=false"]
                if path is None:
                    overrides.append(f"model.name={model}")
                overrides += own + [f"data.store={spec.store}", f"train.seed={seed}"]
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
                        run_dir=out / "runs" / f"{model}-{mode}-seed{seed}",
                        config_source=str(path) if path is not None else "registry defaults",
                    )
                )
    return runs
