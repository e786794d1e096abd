"""Peak activation memory of an ImageBind forward pass, from torch's own allocator accounting.

On the CPU there is no ``torch.cuda.max_memory_allocated``; what torch does have is the
profiler's memory events: with ``profile_memory=True`` the allocator reports every allocation
and free (``c10::reportMemoryUsage``, the same hook the CUDA caching allocator feeds), in order,
including buffers that kernels allocate for themselves. :func:`allocation_peak` sums them in
time order; its peak is the most the allocator held above what was alive when profiling began
(the weights and the input).

Why not a fake-tensor tracker (no compute at all): with torch 2.13, ``MemTracker`` registers
autograd hooks and fails under ``inference_mode`` ("cannot register a hook on a tensor that
doesn't require gradient"); a fake CUDA device on a CPU build cannot choose an SDPA backend
(``_fused_sdp_choice``: "DispatchStub: missing kernel for cuda"), so it cannot show the fused
path either; and a ``TorchDispatchMode`` that counts op outputs misses kernel-internal buffers
(``_safe_softmax``'s boolean mask: 1.07 MB per vision sequence on the math path).
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Literal

import torch

from dgnode.embedding.memory import AUDIO_SHAPE, TEXT_CONTEXT, TEXT_VOCAB, VIDEO_SHAPE
from dgnode.embedding.model import LoadedImageBind

__all__ = ["AllocationPeak", "CpuAttention", "ForwardPeak", "activation_peak", "allocation_peak", "example_input"]

# "default": what SDPA picks on this device (the CPU's flash kernel here); "math": forced math path.
CpuAttention = Literal["default", "math"]


@dataclass(frozen=True)
class AllocationPeak:
    peak_bytes: int  # most held above the start
    end_bytes: int  # still held at the end (0 when everything made was freed)
    events: int


def allocation_peak(fn: Callable[[], object]) -> AllocationPeak:
    """Run ``fn`` under the profiler; the allocator's high-water mark above the start."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())  # stable: same-instant events keep their order
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    return AllocationPeak(peak, live, len(events))


def example_input(modality: str, batch: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """A random input batch of ImageBind's shapes (token ids for text)."""
    generator = torch.Generator().manual_seed(seed)
    if modality == "text":
        return torch.randint(1, TEXT_VOCAB - 1, (batch, TEXT_CONTEXT), generator=generator)
    shape = VIDEO_SHAPE if modality == "vision" else AUDIO_SHAPE
    return torch.randn((batch, *shape), generator=generator).to(dtype)


@dataclass(frozen=True)
class ForwardPeak:
    modality: str
    batch: int
    attention: str
    forward_peak_bytes: int  # allocator peak during the forward, above weights and input
    input_bytes: int  # the input tensor, alive throughout
    seconds: float

    @property
    def peak_bytes(self) -> int:
        """Peak above the weights: what a batch costs on top of the model."""
        return self.forward_peak_bytes + self.input_bytes


def activation_peak(
    loaded: LoadedImageBind, modality: str, batch: int, attention: CpuAttention = "default", seed: int = 0
) -> ForwardPeak:
    """Measure one forward pass of ``batch`` utterances (inference mode) on ``loaded``'s device."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    inputs = example_input(modality, batch, loaded.dtype, seed).to(loaded.device)
    backend = sdpa_kernel(SDPBackend.MATH) if attention == "math" else nullcontext()

    def forward() -> None:
        with torch.inference_mode(), backend:
            loaded.model({modality: inputs})

    started = time.perf_counter()
    measured = allocation_peak(forward)
    seconds = time.perf_counter() - started
    if measured.end_bytes:
        raise RuntimeError(f"{measured.end_bytes} bytes still allocated after the forward pass: the probe leaks")
    return ForwardPeak(modality, batch, attention, measured.peak_bytes, inputs.nbytes, seconds)

