"""Configuration of a training run: ``model``, ``optim``, ``data``, ``train``, ``report``.

Loaded with :func:`load_train_config` (YAML file, then dotted overrides)::

    config = load_train_config("configs/dgode_iemocap.yaml", {"model.hidden": 256, "train.seed": 3})

On the command line the same keys are flags (``dgnode train --model.hidden 256``), and in a search
space they are the searched keys (:mod:`dgnode.tuning.space`).

The ``model`` section is validated against the config class of ``model.name`` in the model
registry (:mod:`dgnode.models.registry`), so ``model.wp`` is accepted for ``dgode`` and
rejected, naming the valid keys, for ``mlp``.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping

from dgnode.features.store import MODALITIES
from dgnode.options import check_finite, load_config

__all__ = ["DataConfig", "LoopConfig", "OptimConfig", "ReportConfig", "TrainConfig", "load_train_config"]


@dataclass
class OptimConfig:
    """Adam; ``weight_decay`` is Adam's L2 penalty (added to the gradient, not decoupled).

    Defaults and why: ``lr``/``weight_decay`` are the paper's IEMOCAP values. ``decay_1d`` false:
    the L2 penalty applies to weight matrices only; shrinking biases, normalisation scales,
    MixHop's hop logits or the ODE's eigenvalue logits towards 0 regularises nothing useful and
    biases them (a spectrum logit of 0 is ``d = 0.5``, a hop logit of 0 equal hops). ``schedule``
    none: the paper trains at a constant rate; ``plateau`` is CORECT's released setting
    (ReduceLROnPlateau on the valid loss, patience 10, factor 0.1, the defaults below), ``cosine``
    anneals to 0 over ``train.epochs``. The schedule steps once per epoch after validation.

    Attributes:
        lr: learning rate (the paper: 1e-4 on IEMOCAP, 5e-6 on MELD)
        weight_decay: L2 penalty
        decay_1d: also apply the L2 penalty to 1-d parameters (biases, norm scales, hop logits, ODE spectra)
        schedule: learning-rate schedule: none, plateau (ReduceLROnPlateau on valid loss) or cosine (over train.epochs)
        plateau_patience: epochs without a lower valid loss before plateau lowers the rate
        plateau_factor: plateau's factor on the rate
    """

    lr: float = 1e-4
    weight_decay: float = 1e-5
    decay_1d: bool = False
    schedule: Literal["none", "plateau", "cosine"] = "none"
    plateau_patience: int = 10
    plateau_factor: float = 0.1

    def __post_init__(self) -> None:
        check_finite("optim", lr=self.lr, weight_decay=self.weight_decay, plateau_factor=self.plateau_factor)
        if self.lr <= 0:
            raise ValueError(f"optim.lr must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        if self.plateau_patience < 0 or not 0.0 < self.plateau_factor < 1.0:
            raise ValueError(f"optim.plateau_patience must be >= 0 and optim.plateau_factor in (0, 1), "
                             f"got {self.plateau_patience}, {self.plateau_factor}")


@dataclass
class DataConfig:
    """Where the features come from (see :func:`dgnode.features.dataset.load_conversations`).

    Attributes:
        store: feature store directory or s3://bucket/prefix
        modalities: subset of text, audio, vision (null: every modality in the store)
        normalise: per-modality normalisation fitted on the train split
    """

    store: str | None = None
    modalities: list[str] | None = None
    normalise: Literal["standard", "l2", "none"] = "standard"

    def __post_init__(self) -> None:
        if self.modalities is not None:
            unknown = [m for m in self.modalities if m not in MODALITIES]
            if unknown or not self.modalities:
                raise ValueError(f"data.modalities must be a non-empty subset of {list(MODALITIES)}, got {self.modalities}")
            if len(set(self.modalities)) != len(self.modalities):
                raise ValueError(f"data.modalities repeats a modality: {self.modalities}")


@dataclass
class LoopConfig:
    """The training loop.

    Defaults and why: ``deterministic`` true, strictly (an op without a deterministic kernel is
    an error naming the op, not a warning): the same config and seed must give the same metrics,
    which is what makes two runs comparable; turn it off for speed on GPU or for models whose
    GPU scatter ops have no deterministic kernel. ``class_weights`` false and ``grad_clip`` null:
    the paper uses neither (and every option off by default keeps runs comparable with it);
    turn on class weights for skewed label sets such as MELD's, clipping when a run's loss
    spikes. ``amp`` false: bf16 autocast speeds up the encoders on GPU but rounds
    to 8 bits of mantissa; it is opt-in and CUDA-only (ignored on CPU), and the graph ODE always
    runs in float32 inside it (adaptive step control and the exact solver's series need it).
    ``nfe_cap`` 1000: about 40x the evaluations of a healthy dopri5 solve, so a stiff trial
    fails in seconds instead of running for hours.

    Attributes:
        epochs: maximum number of epochs
        batch_size: dialogues per batch (the paper: 16 on IEMOCAP, 8 on MELD)
        patience: stop after this many epochs without a better valid weighted F1 (0: never)
        seed: seeds initialisation, dropout and shuffling (each epoch from (seed, epoch))
        deterministic: torch.use_deterministic_algorithms, strict (same seed, same metrics)
        class_weights: weight the loss by inverse class frequency on the train split
        grad_clip: max gradient norm (null: no clipping)
        nfe_cap: max ODE function evaluations per solve (null: unbounded)
        amp: bf16 autocast for the forward pass on CUDA (ignored on CPU)
        device: cpu, cuda, cuda:1, ...
    """

    epochs: int = 60
    batch_size: int = 16
    patience: int = 10
    seed: int = 0
    deterministic: bool = True
    class_weights: bool = False
    grad_clip: float | None = None
    nfe_cap: int | None = 1000
    amp: bool = False
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 0:
            raise ValueError(
                f"train.epochs and train.batch_size must be >= 1 and train.patience >= 0, "
                f"got {self.epochs}, {self.batch_size}, {self.patience}"
            )
        check_finite("train", grad_clip=self.grad_clip)
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"train.grad_clip must be positive or null, got {self.grad_clip}")
        if self.nfe_cap is not None and self.nfe_cap < 1:
            raise ValueError(f"train.nfe_cap must be >= 1 or null, got {self.nfe_cap}")


@dataclass
class ReportConfig:
    """What a finished run draws.

    Attributes:
        plots: write the PNG figures (confusion matrix, per-class F1, t-SNE)
        tsne_points: t-SNE subsample size (0: no t-SNE)
    """

    plots: bool = True
    tsne_points: int = 2000

    def __post_init__(self) -> None:
        if self.tsne_points < 0:
            raise ValueError(f"report.tsne_points must be >= 0, got {self.tsne_points}")


@dataclass
class TrainConfig:
    """A whole training run.

    Attributes:
        model: the model section: model.name picks the model (dgode, corect, mlp, bigru) and
            the other keys are that model's options (`dgnode models` lists them with defaults)
        optim: the optimiser
        data: the features
        train: the training loop
        report: figures
    """

    # Declared as the mapping it is read from (YAML, --model.KEY flags); __post_init__ turns it
    # into the registered config dataclass of model.name, which is what the attribute then holds.
    model: dict[str, Any] = field(default_factory=lambda: {"name": "dgode"})
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    report: ReportConfig = field(default_factory=ReportConfig)

    # The keys that decide the shape of the others (dgnode.command.config_class).
    SPECIALISE_KEYS: ClassVar[tuple[str, ...]] = ("model.name",)

    @classmethod
    def specialise(cls, values: Mapping[str, Any]) -> type:
        """This config with ``model`` typed as the config dataclass of ``values``'s
        ``model.name`` (default dgode): its keys become typed flags and show in ``--help``."""
        name = (values.get("model") or {}).get("name") or "dgode"
        return _for_model(str(name))

    def __post_init__(self) -> None:
        from dgnode.models.registry import model_config_from_dict

        name = self.model.get("name", "dgode") if isinstance(self.model, dict) else getattr(self.model, "name", "?")
        self.model = model_config_from_dict(self.model, source=f"model {name!r}")


def load_train_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """:class:`TrainConfig` from defaults, the YAML at ``path``, then dotted overrides."""
    return load_config(TrainConfig, path, overrides)


@functools.lru_cache(maxsize=None)
def _for_model(name: str) -> type:
    from dgnode.models.registry import model_spec

    model_class = model_spec(name).config_class
    return dataclasses.make_dataclass(
        f"TrainConfig_{name}", [("model", model_class, field(default_factory=model_class))], bases=(TrainConfig,),
        namespace={"__doc__": TrainConfig.__doc__, "__module__": __name__})
