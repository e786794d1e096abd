"""Host rows -> device tensors for the embedding actor, overlapped with compute on CUDA.

:class:`ChunkFeeder` gathers a chunk's rows of a numpy batch into one tensor in the model's dtype
and starts its copy to the device; :meth:`Upload.wait` hands it to the compute stream. The
:class:`~dgnode.embedding.actor.Embedder` starts the next chunk's upload before it runs the
current one, so on a GPU the copy of chunk ``i + 1`` runs while chunk ``i`` computes. Choices
(CUDA only; on the CPU an upload is the gathered tensor itself):

* **Model dtype on the host.** The rows are cast while they are gathered: one pass over host
  memory, half the bytes over PCIe for float32 audio, and no second device copy for a cast.
* **Pinned memory.** A copy from pageable memory goes through a driver staging buffer and
  blocks the calling thread; from page-locked memory it is a DMA that can overlap compute.
  Pinned blocks come from torch's caching host allocator, so equal-sized chunks reuse them.
* **``non_blocking`` copy on a side stream.** On the compute stream the copy would wait for the
  running forward; on its own stream it overlaps it. The compute stream waits for the copy
  (``wait_stream``) before using it, and ``record_stream`` keeps the caching allocator from
  reusing the block until the compute stream is done with it.

The cost model counts two chunk inputs on the device (:data:`dgnode.embedding.memory.INPUT_COPIES`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from dgnode.embedding.model import LoadedImageBind

__all__ = ["ChunkFeeder", "Upload"]


@dataclass
class Upload:
    """A chunk on its way to the device."""

    rows: tuple[int, ...]
    tensor: torch.Tensor
    stream: object | None = None  # the side stream the copy was queued on (CUDA)

    def wait(self) -> torch.Tensor:
        """The tensor, safe to use on the current stream."""
        if self.stream is not None:
            current = torch.cuda.current_stream(self.tensor.device)
            current.wait_stream(self.stream)
            self.tensor.record_stream(current)
            self.stream = None
        return self.tensor


class ChunkFeeder:
    """Starts uploads of chunks of one model's inputs (see the module docstring)."""

    def __init__(self, loaded: LoadedImageBind) -> None:
        self.loaded = loaded
        self.cuda = loaded.device.type == "cuda"
        self.stream = torch.cuda.Stream(loaded.device) if self.cuda else None

    def start(self, inputs: np.ndarray, rows: Sequence[int]) -> Upload:
        gathered = torch.from_numpy(np.ascontiguousarray(inputs[list(rows)]))
        dtype = self.loaded.dtype if gathered.is_floating_point() else gathered.dtype
        if not self.cuda:
            return Upload(tuple(rows), gathered.to(dtype))
        host = torch.empty(gathered.shape, dtype=dtype, pin_memory=True)
        host.copy_(gathered)
        with torch.cuda.stream(self.stream):
            tensor = host.to(self.loaded.device, non_blocking=True)
        return Upload(tuple(rows), tensor, self.stream)
