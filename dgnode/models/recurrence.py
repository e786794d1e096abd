"""Context GRUs over the dialogues of a batch: one encoder (:class:`ContextEncoder`) or several
at once (:func:`encode_contexts`, DGODE's per-modality encoders).

On CUDA an encoder runs ``nn.GRU`` on packed sequences (cuDNN). On CPU, the packed ``nn.GRU``
slices its input once per time step, and the backward of every slice materialises a zero
gradient of the *whole* input: ``O(L_max N d_in)`` memory traffic per direction (a profile of
one IEMOCAP batch at the paper's dims: ``fill_``/``add_`` of such buffers took half the encoder's
time). The CPU path here computes the same recurrence (PyTorch's GRU equations, the ``nn.GRU``'s
own parameters) with the input projection as one product over all rows, the time steps as
views of one tensor (whose backward is one ``stack``), and the recurrences of several encoders
of equal width stacked into one batched product per step. Results equal the packed ``nn.GRU``'s
up to float rounding (tests: 1e-5), gradients too. As with packing, padding never reaches a
dialogue's states: every dialogue's steps come first (the reverse direction runs on each
dialogue reversed), so a dialogue's output does not depend on what it was batched with, and in
causal mode the state of utterance ``i`` depends on utterances ``0..i`` only, bit for bit.

Shapes: ``x (N, in_dim)`` rows of the batch (``dialog_index``, ``position``: ``(N,)``;
``lengths (B,)``) -> ``(N, hidden)``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from dgnode.models.base import from_padded, to_padded

__all__ = ["ContextEncoder", "encode_contexts"]


class ContextEncoder(nn.Module):
    """A GRU over each dialogue's utterances: ``(N, in_dim) -> (N, hidden)``.

    Bidirectional (``hidden / 2`` per direction, concatenated) unless ``causal``: a backward
    GRU reads the future, so in causal mode the encoder runs forward only with ``hidden`` units
    and the state of utterance ``i`` depends on utterances ``0..i`` alone.
    """

    def __init__(self, in_dim: int, hidden: int, causal: bool, num_layers: int = 1) -> None:
        super().__init__()
        if not causal and hidden % 2:
            raise ValueError(f"a bidirectional encoder needs an even hidden size, got {hidden}")
        self.causal = causal
        self.gru = nn.GRU(
            in_dim,
            hidden if causal else hidden // 2,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=not causal,
        )

    def forward(self, x: Tensor, dialog_index: Tensor, position: Tensor, lengths: Tensor) -> Tensor:
        return encode_contexts([self], [x], dialog_index, position, lengths)[0]

    def packed(self, x: Tensor, dialog_index: Tensor, position: Tensor, lengths: Tensor) -> Tensor:
        """The ``nn.GRU`` on packed sequences (the CUDA path, and the reference of the tests)."""
        padded = to_padded(x, dialog_index, position, lengths)
        packed = nn.utils.rnn.pack_padded_sequence(padded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, _ = self.gru(packed)
        output, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True, total_length=padded.shape[1])
        return from_padded(output, dialog_index, position)


def encode_contexts(encoders: Sequence[ContextEncoder], inputs: Sequence[Tensor], dialog_index: Tensor,
                    position: Tensor, lengths: Tensor) -> list[Tensor]:
    """Each encoder over its input rows; on CPU, encoders of the same shape share one batched
    recurrence (see the module docstring)."""
    if not inputs:
        return []
    if inputs[0].is_cuda or any(e.gru.dropout for e in encoders):
        return [e.packed(x, dialog_index, position, lengths) for e, x in zip(encoders, inputs)]
    groups: dict[tuple, list[int]] = {}
    for index, encoder in enumerate(encoders):
        gru = encoder.gru
        groups.setdefault((gru.hidden_size, gru.num_layers, gru.bidirectional), []).append(index)
    outputs: list[Tensor | None] = [None] * len(encoders)
    for members in groups.values():
        results = _batched_gru([encoders[i].gru for i in members], [inputs[i] for i in members],
                               dialog_index, position, lengths)
        for i, result in zip(members, results):
            outputs[i] = result
    return outputs  # type: ignore[return-value]


def _batched_gru(grus: Sequence[nn.GRU], inputs: Sequence[Tensor], dialog_index: Tensor, position: Tensor,
                 lengths: Tensor) -> list[Tensor]:
    first = grus[0]
    directions = 2 if first.bidirectional else 1
    # The reverse direction reads each dialogue from its end: position L - 1 - p comes first.
    positions = [position, lengths[dialog_index] - 1 - position][:directions]
    layer_inputs = list(inputs)
    for layer in range(first.num_layers):
        gates, weights, biases = [], [], []
        for gru, x in zip(grus, layer_inputs):
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                projected = F.linear(x, getattr(gru, "weight_ih" + suffix), getattr(gru, "bias_ih" + suffix))
                gates.append(to_padded(projected, dialog_index, positions[direction], lengths))
                weights.append(getattr(gru, "weight_hh" + suffix))
                biases.append(getattr(gru, "bias_hh" + suffix))
        # (L, S, B, 3H): each time step a contiguous view for every stream s and dialogue b.
        steps = torch.stack(gates).permute(2, 0, 1, 3).contiguous()
        weight = torch.stack(weights).transpose(1, 2)  # (S, H, 3H)
        bias = torch.stack(biases).unsqueeze(1)  # (S, 1, 3H)
        state = steps.new_zeros(steps.shape[1], steps.shape[2], first.hidden_size)
        states = []
        for step in steps.unbind(0):
            input_r, input_z, input_n = step.chunk(3, dim=-1)
            hidden_r, hidden_z, hidden_n = torch.baddbmm(bias, state, weight).chunk(3, dim=-1)
            reset = torch.sigmoid(input_r + hidden_r)
            update = torch.sigmoid(input_z + hidden_z)
            candidate = torch.tanh(input_n + reset * hidden_n)
            state = candidate + update * (state - candidate)
            states.append(state)
        history = torch.stack(states, dim=2)  # (S, B, L, H)
        layer_inputs = [
            torch.cat([from_padded(history[g * directions + d], dialog_index, positions[d]) for d in range(directions)], -1)
            for g in range(len(grus))
        ]
    return layer_inputs
