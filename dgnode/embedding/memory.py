"""How many utterances fit in one forward pass: a per-item memory cost model of ImageBind.

The budget ``M`` (``gpu_memory_gb``, default 24 GB) must hold the weights, a fixed reserve
and the activations of the batch:

.. math::

    B_m = \\left\\lfloor \\frac{M - W - R}{\\sigma \\, a_m} \\right\\rfloor

with ``W`` the weight bytes of the kept branches, ``R`` a reserve (CUDA context, cuBLAS
workspaces, allocator slack), ``sigma`` a safety factor and ``a_m`` the activation bytes per
utterance of modality ``m``. Modalities run one after the other, so each gets the whole
remaining budget.

**Weights** ``W = b_w * P``: ``P`` counts parameters exactly from the dims (see
:func:`parameter_count`): a pre-LN transformer block of width ``D`` holds
``12 D^2 + 13 D`` parameters (QKV ``3D^2+3D``, output ``D^2+D``, MLP ``8D^2+5D``, two
LayerNorms ``4D``), plus stems, position/class embeddings and heads. For ``imagebind_huge`` this
gives vision 632.83 M, text 354.03 M, audio 86.24 M: 2.15 GB in float16.

**Activations** ``a_m = S_m * b * e(L, K, D, H) + b_in * I_m``: ``S_m`` sequences per utterance
(vision 5 clips x 3 crops = 15, audio 3 clips, text 1), each of ``L`` tokens (vision
``1 + (224/14)^2 = 257``, audio ``1 + 12 * 19 = 229``, text 77) attending to ``K`` keys (``L``,
plus one learned key for audio), width ``D``, ``H`` heads, ``b`` bytes per element; ``I_m`` input
elements per utterance (vision 15x3x2x224x224, audio 3x128x204, text 77 ids of 8 bytes).
Without autograd, only one block's tensors are alive at a time, so the layer count enters
through ``W`` only. Inside a block the peak is the larger of

* attention: residual, LayerNorm output, packed QKV, per-head Q/K/V copies, context and
  projection (``10 L D``) plus scores and softmax (``2 H L K``, assuming the unfused "math"
  attention; fused kernels need less);
* MLP: residual, LayerNorm output, hidden and activation (``4 L D`` each), output: ``11 L D``.

So ``e = max(10 L D + 2 H L K, 11 L D)`` elements. For huge vision in float16 that is
10.8 MB per sequence, 171 MB per utterance with its input: about 79 utterances per batch in
24 GB with ``R = 1.5 GB`` and ``sigma = 1.5``. ``bench/bench_extract.py --gpu`` measures the
real peaks per batch size against this prediction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from dgnode.embedding.model import ImageBindSpec

__all__ = [
    "BatchPlan",
    "TrunkShape",
    "activation_bytes_per_item",
    "parameter_count",
    "plan_batch_sizes",
    "trunk_shapes",
    "weight_bytes",
]

GB = 1e9
TEXT_VOCAB = 49408
TEXT_CONTEXT = 77
VIDEO_SHAPE = (15, 3, 2, 224, 224)  # clips x crops, channels, frames, height, width
AUDIO_SHAPE = (3, 1, 128, 204)  # clips, channel, mel bins, frames
VISION_PATCH = (2, 14, 14)
AUDIO_KERNEL, AUDIO_STRIDE = 16, 10


@dataclass(frozen=True)
class TrunkShape:
    """Sequence geometry of one modality's transformer for one utterance."""

    width: int
    layers: int
    heads: int
    tokens: int  # L
    keys: int  # K: tokens attended to (audio adds one learned key/value)
    sequences: int  # S: sequences per utterance
    input_elements: int  # I: elements of one utterance's input tensor
    input_bytes: int  # bytes per input element on the device (token ids are int64)


def trunk_shapes(spec: ImageBindSpec, element_bytes: int = 2) -> dict[str, TrunkShape]:
    vision_tokens = 1 + (VIDEO_SHAPE[2] // VISION_PATCH[0]) * (224 // VISION_PATCH[1]) * (224 // VISION_PATCH[2])
    mel_patches = (AUDIO_SHAPE[2] - AUDIO_KERNEL) // AUDIO_STRIDE + 1
    time_patches = (AUDIO_SHAPE[3] - AUDIO_KERNEL) // AUDIO_STRIDE + 1
    audio_tokens = 1 + mel_patches * time_patches
    return {
        "vision": TrunkShape(
            spec.vision_embed_dim, spec.vision_num_blocks, spec.vision_num_heads,
            vision_tokens, vision_tokens, VIDEO_SHAPE[0], math.prod(VIDEO_SHAPE), element_bytes,
        ),
        "audio": TrunkShape(
            spec.audio_embed_dim, spec.audio_num_blocks, spec.audio_num_heads,
            audio_tokens, audio_tokens + 1, AUDIO_SHAPE[0], math.prod(AUDIO_SHAPE), element_bytes,
        ),
        "text": TrunkShape(
            spec.text_embed_dim, spec.text_num_blocks, spec.text_num_heads,
            TEXT_CONTEXT, TEXT_CONTEXT, 1, TEXT_CONTEXT, 8,
        ),
    }


def _block_parameters(width: int) -> int:
    return 12 * width * width + 13 * width


def parameter_count(spec: ImageBindSpec, modality: str) -> int:
    """Exact parameter count of one ImageBind branch (preprocessor, trunk, head, postprocessor)."""
    out = spec.out_embed_dim
    if modality == "vision":
        d = spec.vision_embed_dim
        stem = 3 * math.prod(VISION_PATCH) * d
        embeddings = d + trunk_shapes(spec)["vision"].tokens * d  # class token, positions
        return stem + embeddings + 2 * d + spec.vision_num_blocks * _block_parameters(d) + 2 * d + d * out
    if modality == "text":
        d = spec.text_embed_dim
        embeddings = TEXT_VOCAB * d + TEXT_CONTEXT * d
        logit_scale = 1  # learnable in the text postprocessor
        return embeddings + spec.text_num_blocks * _block_parameters(d) + 2 * d + d * out + logit_scale
    if modality == "audio":
        d = spec.audio_embed_dim
        stem = AUDIO_KERNEL * AUDIO_KERNEL * d + 2 * d  # conv + LayerNorm
        embeddings = d + trunk_shapes(spec)["audio"].tokens * d
        bias_kv = 2 * d
        return stem + embeddings + spec.audio_num_blocks * (_block_parameters(d) + bias_kv) + 2 * d + d * out
    raise ValueError(f"unknown modality {modality!r}")


def weight_bytes(spec: ImageBindSpec, modalities: Sequence[str], element_bytes: int = 2) -> int:
    return element_bytes * sum(parameter_count(spec, m) for m in modalities)


def activation_bytes_per_item(spec: ImageBindSpec, modality: str, element_bytes: int = 2) -> int:
    """``a_m``: bytes of activations and input for one utterance (see the module docstring)."""
    shape = trunk_shapes(spec, element_bytes)[modality]
    tokens_width = shape.tokens * shape.width
    per_sequence = max(10 * tokens_width + 2 * shape.heads * shape.tokens * shape.keys, 11 * tokens_width)
    return shape.sequences * element_bytes * per_sequence + shape.input_bytes * shape.input_elements


@dataclass
class BatchPlan:
    """Batch size per modality and the numbers behind it."""

    sizes: dict[str, int]
    budget_bytes: int
    weight_bytes: int
    reserve_bytes: int
    safety: float
    item_bytes: dict[str, int] = field(default_factory=dict)

    def predicted_peak_bytes(self, modality: str, batch: int) -> int:
        """What the model predicts the device holds for a batch of ``batch`` items (no safety)."""
        return self.weight_bytes + batch * self.item_bytes[modality]


def plan_batch_sizes(
    spec: ImageBindSpec,
    modalities: Sequence[str],
    gpu_memory_gb: float = 24.0,
    element_bytes: int = 2,
    reserve_gb: float = 1.5,
    safety: float = 1.5,
    max_batch: int | None = None,
) -> BatchPlan:
    """``B_m`` per modality (at least 1; capped at ``max_batch`` when given)."""
    budget = int(gpu_memory_gb * GB)
    weights = weight_bytes(spec, modalities, element_bytes)
    reserve = int(reserve_gb * GB)
    free = budget - weights - reserve
    if free <= 0:
        raise ValueError(
            f"a {gpu_memory_gb:g} GB budget does not hold the weights ({weights / GB:.2f} GB) "
            f"and the {reserve_gb:g} GB reserve"
        )
    sizes, items = {}, {}
    for modality in modalities:
        items[modality] = activation_bytes_per_item(spec, modality, element_bytes)
        size = max(1, int(free // (safety * items[modality])))
        sizes[modality] = min(size, max_batch) if max_batch else size
    return BatchPlan(sizes, budget, weights, reserve, safety, items)
