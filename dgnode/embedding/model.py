"""ImageBind models for extraction: the real ``imagebind_huge`` from a checkpoint, or a tiny one.

Both are ``imagebind.models.imagebind_model.ImageBindModel`` built from an :class:`ImageBindSpec`
(the same code path; only the widths differ). ``huge`` matches ``imagebind_huge()``: vision
ViT-H (1280 wide, 32 blocks), text 1024 x 24, audio 768 x 12, 1024-d outputs. ``tiny`` is a
seeded random-init model with one 32-wide block per modality, for tests and the demo.

Loading a checkpoint: the model is built on the ``meta`` device (no memory, no random init),
the state dict is memory-mapped (``torch.load(path, weights_only=True, mmap=True)``) and
assigned strictly, so a checkpoint that does not fit the spec fails with the key names; only
then are the modality branches that extraction does not use (thermal, depth, IMU, and any
unrequested modality) deleted, and the rest is moved to the device. The checkpoint's sha256 is
streamed (8 MiB reads) and recorded.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.overrides import TorchFunctionMode

from dgnode.embedding.config import EXTRACTED_MODALITIES
from dgnode.errors import InputError

__all__ = [
    "EXTRACTED_MODALITIES",
    "HUGE",
    "HUGE_NEEDS_CHECKPOINT",
    "IMAGEBIND_ONLY_MODALITIES",
    "ImageBindSpec",
    "LoadedImageBind",
    "SPECS",
    "TINY",
    "build_imagebind",
    "random_branch",
    "resolve_device",
    "sha256_file",
]

IMAGEBIND_ONLY_MODALITIES = ("thermal", "depth", "imu")
HUGE_NEEDS_CHECKPOINT = (
    "--model huge needs --checkpoint PATH to imagebind_huge.pth (about 4.8 GB, "
    "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth); use --model tiny for a demo"
)


@dataclass(frozen=True)
class ImageBindSpec:
    """Constructor arguments of ``ImageBindModel`` that matter for extraction."""

    name: str
    out_embed_dim: int
    vision_embed_dim: int
    vision_num_blocks: int
    vision_num_heads: int
    text_embed_dim: int
    text_num_blocks: int
    text_num_heads: int
    audio_embed_dim: int
    audio_num_blocks: int
    audio_num_heads: int
    # Branches that are built (so a full checkpoint loads strictly) and then deleted.
    other_kwargs: dict[str, Any] = field(default_factory=dict)

    def model_kwargs(self) -> dict[str, Any]:
        kwargs = asdict(self)
        kwargs.pop("name")
        kwargs.update(kwargs.pop("other_kwargs"))
        return kwargs


HUGE = ImageBindSpec(
    name="imagebind_huge",
    out_embed_dim=1024,
    vision_embed_dim=1280,
    vision_num_blocks=32,
    vision_num_heads=16,
    text_embed_dim=1024,
    text_num_blocks=24,
    text_num_heads=16,
    audio_embed_dim=768,
    audio_num_blocks=12,
    audio_num_heads=12,
    other_kwargs={"audio_drop_path": 0.1, "imu_drop_path": 0.7},
)

TINY = ImageBindSpec(
    name="imagebind_tiny",
    out_embed_dim=32,
    vision_embed_dim=32,
    vision_num_blocks=1,
    vision_num_heads=2,
    text_embed_dim=32,
    text_num_blocks=1,
    text_num_heads=2,
    audio_embed_dim=32,
    audio_num_blocks=1,
    audio_num_heads=2,
    other_kwargs={
        "depth_embed_dim": 16, "depth_num_blocks": 1, "depth_num_heads": 2,
        "thermal_embed_dim": 16, "thermal_num_blocks": 1, "thermal_num_heads": 2,
        "imu_embed_dim": 16, "imu_num_blocks": 1, "imu_num_heads": 2,
    },
)

SPECS = {"huge": HUGE, "tiny": TINY}


@dataclass
class LoadedImageBind:
    """A ready model: eval mode, no gradients, on ``device`` in ``dtype``."""

    model: torch.nn.Module
    spec: ImageBindSpec
    kind: str
    modalities: tuple[str, ...]
    device: torch.device
    dtype: torch.dtype
    checkpoint: str | None
    checkpoint_sha256: str | None
    seed: int | None

    @property
    def dims(self) -> dict[str, int]:
        return {m: self.spec.out_embed_dim for m in self.modalities}

    @property
    def model_name(self) -> str:
        if self.checkpoint is None:
            return f"{self.spec.name}(random-init, seed={self.seed})"
        return self.spec.name

    def forward(self, modality: str, inputs: torch.Tensor) -> torch.Tensor:
        """``(B, ...)`` inputs of one modality -> ``(B, out_embed_dim)`` float32 on the CPU.

        Video ``(B, 15, 3, 2, 224, 224)`` and audio ``(B, 3, 1, 128, 204)`` are averaged over their
        clips inside ImageBind (its ``reduce_list``); text is ``(B, 77)`` token ids.
        """
        tensor = inputs.to(self.device)
        if tensor.is_floating_point():
            tensor = tensor.to(self.dtype)
        return self.run(modality, tensor)

    def run(self, modality: str, tensor: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` of an input already on the device in the model's dtype."""
        if modality not in self.modalities:
            raise ValueError(f"model was built for {self.modalities}, not {modality!r}")
        # SDPA: ImageBind's nn.MultiheadAttention (need_weights=False) calls
        # F.scaled_dot_product_attention, which picks a fused kernel on CUDA: O(L) memory, not O(L^2).
        with torch.inference_mode():
            return self.model({modality: tensor})[modality].float().cpu()


def sha256_file(path: str | Path, chunk_bytes: int = 8 << 20) -> str:
    """sha256 of a file read in ``chunk_bytes`` pieces (a 4.8 GB checkpoint never sits in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_imagebind(
    kind: str = "huge",
    checkpoint: str | Path | None = None,
    *,
    modalities: Sequence[str] = EXTRACTED_MODALITIES,
    device: str | torch.device | None = "auto",
    dtype: torch.dtype | None = None,
    seed: int = 0,
    random_init: bool = False,
    checkpoint_sha256: str | None = None,
) -> LoadedImageBind:
    """Build ``kind`` ("huge" or "tiny") for ``modalities``.

    ``huge`` needs ``checkpoint`` (``imagebind_huge.pth``) unless ``random_init`` (benchmarks).
    ``dtype`` defaults to float16 on CUDA, float32 on the CPU. ``checkpoint_sha256`` skips
    re-hashing a checkpoint whose hash the caller already knows (Ray actors).

    16-bit weights rather than autocast: under ``inference_mode`` autocast would keep float32
    weights (twice the memory) and cast each one again on every forward (its cast cache only
    serves weights that require grad); CUDA's 16-bit matmul, LayerNorm and softmax kernels
    accumulate in float32 either way.
    """
    if kind not in SPECS:
        raise InputError(f"unknown model {kind!r}; expected one of {sorted(SPECS)}")
    unknown = sorted(set(modalities) - set(EXTRACTED_MODALITIES))
    if unknown or not modalities:
        raise InputError(f"modalities must be a non-empty subset of {list(EXTRACTED_MODALITIES)}, got {list(modalities)}")
    spec = SPECS[kind]
    if kind == "huge" and checkpoint is None and not random_init:
        raise InputError(HUGE_NEEDS_CHECKPOINT)
    from dgnode.compat import import_imagebind_models

    imagebind_model = import_imagebind_models()
    target = resolve_device(device)
    dtype = dtype or (torch.float16 if target.type == "cuda" else torch.float32)

    digest = None
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise InputError("checkpoint file not found", path=str(path))
        digest = checkpoint_sha256 or sha256_file(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as error:  # noqa: BLE001 - torch raises several types for bad files
            raise InputError(f"not a loadable torch checkpoint ({type(error).__name__}: {error})", path=str(path)) from None
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]
        with torch.device("meta"), _LinspaceOnCpu():
            model = imagebind_model.ImageBindModel(**spec.model_kwargs())
        try:
            model.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as error:
            summary = " ".join(str(error).split())[:400]
            raise InputError(f"checkpoint does not match {spec.name}: {summary}", path=str(path)) from None
    else:
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            # Random init directly on the target device: ImageBind-huge initialises in seconds on a GPU.
            with torch.device(target):
                model = imagebind_model.ImageBindModel(**spec.model_kwargs())
        finally:
            torch.random.set_rng_state(generator_state)

    _drop_branches(model, keep=tuple(modalities))
    model = model.to(device=target, dtype=dtype).eval().requires_grad_(False)
    return LoadedImageBind(
        model=model,
        spec=spec,
        kind=kind,
        modalities=tuple(m for m in EXTRACTED_MODALITIES if m in modalities),
        device=target,
        dtype=dtype,
        checkpoint=str(checkpoint) if checkpoint is not None else None,
        checkpoint_sha256=digest,
        seed=None if checkpoint is not None else seed,
    )


def random_branch(
    kind: str,
    modality: str,
    *,
    num_blocks: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> LoadedImageBind:
    """One modality of ``kind`` with random weights and ``num_blocks`` blocks in its trunk (memory probes).

    Built on the ``meta`` device, so the full model (all six branches) costs nothing; only the
    kept branch is materialised, in ``dtype``, with N(0, 0.02) weights (any finite values do:
    activation sizes depend on shapes only). Without autograd only one block's activations are
    alive at a time, so a short trunk of full width has the activation peak of the full one
    (from the second block on: the first one's input is also the trunk's input).
    """
    spec = SPECS[kind]
    if modality not in EXTRACTED_MODALITIES:
        raise InputError(f"unknown modality {modality!r}; expected one of {list(EXTRACTED_MODALITIES)}")
    from dgnode.compat import import_imagebind_models

    if num_blocks is not None:
        spec = replace(spec, **{f"{modality}_num_blocks": num_blocks})
    with torch.device("meta"), _LinspaceOnCpu():
        model = import_imagebind_models().ImageBindModel(**spec.model_kwargs())
    _drop_branches(model, keep=(modality,))
    model = model.to(dtype).to_empty(device=device)  # converted on meta: nothing is allocated twice
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point():
                tensor.normal_(0.0, 0.02, generator=generator)
    model = model.eval().requires_grad_(False)
    return LoadedImageBind(
        model=model, spec=spec, kind=kind, modalities=(modality,), device=torch.device(device),
        dtype=dtype, checkpoint=None, checkpoint_sha256=None, seed=seed,
    )


class _LinspaceOnCpu(TorchFunctionMode):
    """Keep ``torch.linspace`` on the CPU while building on the meta device: ImageBind reads its
    drop-path rates with ``.item()``, which a meta tensor cannot answer."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is torch.linspace:
            kwargs["device"] = "cpu"
        return func(*args, **kwargs)


def _drop_branches(model: torch.nn.Module, keep: tuple[str, ...]) -> None:
    """Delete every modality branch not in ``keep`` (after a strict load, so nothing is missed)."""
    for container in ("modality_preprocessors", "modality_trunks", "modality_heads", "modality_postprocessors"):
        modules = getattr(model, container)
        for name in list(modules.keys()):
            if name not in keep:
                del modules[name]
