"""How many utterances fit in one forward pass: ImageBind's memory, counted from its architecture.

The budget ``M`` (``gpu_memory_gb``, default 24 GB) holds the weights, the activations of one
batch and a margin:

.. math::

    B_m = \\left\\lfloor \\frac{(1 - \\mu) M - W}{a_m} \\right\\rfloor

with ``W`` the weight bytes of the kept branches, ``a_m`` the bytes per utterance of modality
``m`` and ``mu`` = :data:`SAFETY_MARGIN`. Modalities run one after the other, so each gets the
whole budget. The plan for 24 GB is what ``dgnode extract --plan`` prints.

**Weights** ``W = b * P``: ``P`` counts parameters exactly from the dims (see
:func:`parameter_count`): a pre-LN transformer block of width ``D`` holds ``12 D^2 + 13 D``
parameters (QKV ``3D^2+3D``, output ``D^2+D``, MLP ``8D^2+5D``, two LayerNorms ``4D``), plus
stems, position/class embeddings and heads. ``imagebind_huge``: vision 632.83 M, text 354.03 M,
audio 86.24 M, 2.15 GB in 16-bit.

**Activations** ``a_m = S_m e_m + 2 b_in I_m``: ``S_m`` sequences per utterance (vision 5 clips x
3 crops = 15, audio 3 clips, text 1) of ``L`` tokens (vision ``1 + (224/14)^2 = 257``, audio
``1 + 12 * 19 = 229``, text 77), width ``D``, ``H`` heads, ``K`` keys (``L``; audio adds one
learned key), ``b`` bytes per element; ``I_m`` input elements per utterance, held twice (the
chunk being embedded and the next one, uploaded while it runs: :mod:`dgnode.embedding.transfer`).
Nothing is kept for backward, so the peak ``e_m`` per sequence is that of one block, reached
either in the MLP or in the attention:

* **MLP** (at the GELU): ``12 L D b``. Alive: the trunk input that ImageBind's ``forward``
  keeps in its ``trunk_inputs`` dict (1), the previous block's output held by the trunk's loop
  (1), the residual after attention (1), the LayerNorm output (1), the hidden layer before and
  after GELU (4 + 4).
* **Attention, fused** (CUDA flash / memory-efficient SDPA; the CPU's flash kernel): the packed
  QKV and its contiguous copy (``9 L D b`` with the three above) and then the output and its
  log-sum-exp: always below the MLP. So ``e = 12 L D b`` (:data:`MLP_WIDTHS`).
* **Attention, math SDPA** (the fallback when no fused kernel applies): before the scores,
  ``P = (6 + 2 [bias]) L D b + (3 c + 1) 4 L D`` with ``c = [b < 4]``: the six ``L D b``
  tensors (the three above and Q, K, V), two more for audio (K and V concatenated with the
  learned bias), Q/K/V upcast to float32 in 16-bit (the math path computes in float32 unless
  ``allow_fp16_bf16_reduction_math_sdp``) and one scaled copy. Then either the softmax
  (float32 scores and probabilities and ``_safe_softmax``'s boolean mask: ``9 H L K`` bytes) or
  the output (float32 probabilities, their 16-bit copy, the float32 output and its 16-bit copy:
  ``(4 + 2c) (H L K + L D)``), whichever is larger (in 16-bit the softmax for vision and
  audio, the output for text). So ``e = max(12 L D b, P + 9 H L K, P + (4 + 2c)(H L K + L D))``.

These counts were read from allocation traces and checked against torch's allocator accounting
(the profiler's memory events, :mod:`dgnode.embedding.probe`) on ImageBind-huge itself, fp32
and bf16, batches 1, 2, 4, with a 2-block trunk; the full 32-block vision trunk peaks at the
same byte (``bench/bench_imagebind_memory.py``, README "Benchmarks"). The fused-path prediction
is exact (to 8 bytes: text's int64 sequence lengths), the math path within 0.11%, and there is
no fixed term (the measured peak is proportional to the batch). For huge in 16-bit that is 127.5 MB per
vision utterance with the input counted once, 136.5 MB as planned, and a 24 GB plan of
142 vision / 1499 audio / 10,273 text utterances.

**Margin** (:data:`SAFETY_MARGIN`): what the CPU cannot show. A CUDA context and its kernel
images live outside the allocator (typically 0.3-0.6 GB); cuBLAS and cuDNN workspaces (the
vision stem is a Conv3d) and the caching allocator's rounding and fragmentation come on top of
the tensors counted here. ``bench/gpu_check.sh`` measures all of it on a GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Sequence

from dgnode.embedding.model import ImageBindSpec

__all__ = [
    "ATTENTION_PATHS",
    "AUDIO_SHAPE",
    "BatchPlan",
    "GB",
    "INPUT_COPIES",
    "MLP_WIDTHS",
    "SAFETY_MARGIN",
    "TEXT_CONTEXT",
    "TEXT_VOCAB",
    "TrunkShape",
    "VIDEO_SHAPE",
    "activation_bytes_per_item",
    "activation_bytes_per_sequence",
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

Attention = Literal["fused", "math"]
ATTENTION_PATHS: tuple[str, ...] = ("fused", "math")

# L x D tensors alive at the MLP's GELU (see the module docstring); measured 12.00 on all three trunks.
MLP_WIDTHS = 12
# Math SDPA: L x D tensors alive in the model's dtype before the call, and per learned bias key/value.
_MATH_BASE_WIDTHS, _MATH_BIAS_KV_WIDTHS = 6, 2
# Math SDPA, per H x L x K at the softmax: float32 scores (4) and probabilities (4), _safe_softmax's bool mask (1).
_MATH_SCORE_BYTES = 9
_FLOAT32 = 4
# Device copies of a chunk's input: the one being embedded and the next one, uploaded meanwhile.
INPUT_COPIES = 2
# Fraction of the budget left unplanned: the CUDA context (outside the allocator, 0.3-0.6 GB),
# cuBLAS/cuDNN workspaces and allocator rounding/fragmentation that a CPU measurement cannot
# see. 10% of 24 GB is 2.4 GB, about four times the context, and leaves 8% of the activations for
# the rest; an error beyond it costs an out-of-memory retry at half the batch, never an item.
SAFETY_MARGIN = 0.10


@dataclass(frozen=True)
class TrunkShape:
    """Sequence geometry of one modality's transformer for one utterance."""

    width: int  # D
    layers: int
    heads: int  # H
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


def activation_bytes_per_sequence(
    spec: ImageBindSpec, modality: str, element_bytes: int = 2, attention: Attention = "fused"
) -> int:
    """``e_m``: peak bytes of one block's activations for one sequence (the module docstring)."""
    if attention not in ATTENTION_PATHS:
        raise ValueError(f"attention must be one of {ATTENTION_PATHS}, got {attention!r}")
    shape = trunk_shapes(spec, element_bytes)[modality]
    tokens_width = shape.tokens * shape.width
    mlp = MLP_WIDTHS * tokens_width * element_bytes
    if attention == "fused":
        return mlp
    bias_kv = shape.keys > shape.tokens
    cast = element_bytes < _FLOAT32  # 16-bit: Q/K/V, probabilities and output cross float32
    scores = shape.heads * shape.tokens * shape.keys
    before = (_MATH_BASE_WIDTHS + _MATH_BIAS_KV_WIDTHS * bias_kv) * tokens_width * element_bytes
    before += (3 * cast + 1) * tokens_width * _FLOAT32  # Q/K/V in float32, one scaled copy
    softmax = _MATH_SCORE_BYTES * scores
    output = (_FLOAT32 + element_bytes * cast) * scores + (_FLOAT32 + element_bytes * cast) * tokens_width
    return max(mlp, before + softmax, before + output)


def activation_bytes_per_item(
    spec: ImageBindSpec,
    modality: str,
    element_bytes: int = 2,
    attention: Attention = "fused",
    input_copies: int = INPUT_COPIES,
) -> int:
    """``a_m``: bytes of activations and input for one utterance (see the module docstring)."""
    shape = trunk_shapes(spec, element_bytes)[modality]
    per_sequence = activation_bytes_per_sequence(spec, modality, element_bytes, attention)
    return shape.sequences * per_sequence + input_copies * shape.input_bytes * shape.input_elements


@dataclass
class BatchPlan:
    """Batch size per modality and the numbers behind it."""

    sizes: dict[str, int]
    budget_bytes: int
    weight_bytes: int
    margin_bytes: int
    element_bytes: int
    attention: str
    item_bytes: dict[str, int] = field(default_factory=dict)

    def predicted_peak_bytes(self, modality: str, batch: int) -> int:
        """What the model predicts the device allocator holds at most for ``batch`` items (no margin)."""
        return self.weight_bytes + batch * self.item_bytes[modality]

    def as_dict(self) -> dict:
        return {
            "sizes": dict(self.sizes),
            "budget_bytes": self.budget_bytes,
            "weight_bytes": self.weight_bytes,
            "margin_bytes": self.margin_bytes,
            "element_bytes": self.element_bytes,
            "attention": self.attention,
            "item_bytes": dict(self.item_bytes),
            "predicted_peak_bytes": {m: self.predicted_peak_bytes(m, n) for m, n in self.sizes.items()},
        }


def plan_batch_sizes(
    spec: ImageBindSpec,
    modalities: Sequence[str],
    gpu_memory_gb: float = 24.0,
    element_bytes: int = 2,
    max_batch: int | None = None,
    attention: Attention = "fused",
    margin: float = SAFETY_MARGIN,
) -> BatchPlan:
    """``B_m`` per modality (at least 1; capped at ``max_batch`` when given)."""
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    budget = int(gpu_memory_gb * GB)
    weights = weight_bytes(spec, modalities, element_bytes)
    margin_bytes = int(margin * budget)
    free = budget - margin_bytes - weights
    if free <= 0:
        raise ValueError(
            f"a {gpu_memory_gb:g} GB budget does not hold the weights ({weights / GB:.2f} GB) "
            f"and the {margin:.0%} safety margin"
        )
    sizes, items = {}, {}
    for modality in modalities:
        items[modality] = activation_bytes_per_item(spec, modality, element_bytes, attention)
        size = max(1, free // items[modality])
        sizes[modality] = min(size, max_batch) if max_batch else size
    return BatchPlan(sizes, budget, weights, margin_bytes, element_bytes, attention, items)
