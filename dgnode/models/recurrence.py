"""Context GRUs over the dialogues of a batch: one encoder (:class:`ContextEncoder`) or several
at once (:func:`encode_contexts`, DGODE's per-modality encoders).

On CUDA an encoder runs ``nn.GRU`` on packed sequences (cuDNN). On CPU, the packed ``nn.GRU``
slices its input once per time step, and the backward of every slice materialises a zero
gradient of the *whole* input: ``O(L_max N d_in)`` memory traffic per direction (a profile of
one IEMOCAP batch at the paper's dims: ``fill_``/``add_`` of such buffers took half the encoder's
time). The CPU path here computes the same recurrence (PyTorch's GRU equations, the ``nn.GRU``'s
own parameters) with the input projection as one product over all rows, the time steps as
views of one tensor, the recurrences of several encoders of equal width stacked into one batched
product per step, and the backward through time written out (:class:`_Recurrence`: the
recurrent weights' gradient as one product over all steps instead of one product and one
accumulation per step; measured about 10% off the three encoders' forward + backward at the
paper's dims). Results equal the packed ``nn.GRU``'s up to float rounding (tests: 1e-5 in
float32, 1e-10 in float64), gradients too. As with packing, padding never reaches a
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


class _Recurrence(torch.autograd.Function):
    """PyTorch's GRU equations over the time steps, with the backward through time written out.

    ``steps (L, S, B, 3H)`` input projections (``W_i x + b_i``; gates r, z, n), ``weight (S, H, 3H)``
    (``W_h^T``), ``bias (S, 1, 3H)`` -> states ``(L, S, B, H)``; per step ``a = b_h + h W_h^T``,
    ``r = σ(x_r + a_r)``, ``z = σ(x_z + a_z)``, ``n = tanh(x_n + r a_n)``, ``h' = n + z (h - n)``.

    Autograd over the step loop computes ``h^T ∂a`` for ``W_h`` at every step, one small product
    and one accumulation per step, and concatenates the three gate gradients twice per step
    (profiled at the paper's dims: about a third of the recurrence's backward). Here the backward keeps
    the gate gradients of all steps in one buffer and forms ``∂W_h`` and ``∂b_h`` once, as one
    batched product over all steps. The same sums, in another order: float rounding only.
    """

    @staticmethod
    def forward(ctx, steps: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        length, streams, batch, _ = steps.shape
        size = weight.shape[1]
        states = steps.new_empty(length, streams, batch, size)
        gates = steps.new_empty(length, streams, batch, 3 * size)  # r, z, n after their nonlinearity
        hidden_n = steps.new_empty(length, streams, batch, size)  # a_n, the recurrent part of n
        state = steps.new_zeros(streams, batch, size)
        for t in range(length):
            hidden = torch.baddbmm(bias, state, weight)
            torch.sigmoid(steps[t, ..., :2 * size] + hidden[..., :2 * size], out=gates[t, ..., :2 * size])
            reset, update = gates[t, ..., :size], gates[t, ..., size:2 * size]
            hidden_n[t] = hidden[..., 2 * size:]
            candidate = torch.tanh(torch.addcmul(steps[t, ..., 2 * size:], reset, hidden_n[t]), out=gates[t, ..., 2 * size:])
            state = torch.sub(state, candidate, out=states[t]).mul_(update).add_(candidate)  # n + z (h - n)
        ctx.save_for_backward(weight, gates, hidden_n, states)
        return states

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_states: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        weight, gates, hidden_n, states = ctx.saved_tensors
        length, streams, batch, size = states.shape
        grad_steps = gates.new_empty(gates.shape)  # ∂ of x_r, x_z, x_n
        grad_hidden = gates.new_empty(gates.shape)  # ∂ of a_r, a_z, a_n
        weight_t = weight.transpose(1, 2)
        carry = states.new_zeros(streams, batch, size)  # ∂h of the state entering step t + 1
        zero = states.new_zeros(streams, batch, size)
        for t in range(length - 1, -1, -1):
            grad = carry + grad_states[t]
            reset, update, candidate = gates[t, ..., :size], gates[t, ..., size:2 * size], gates[t, ..., 2 * size:]
            previous = states[t - 1] if t else zero
            # Written straight into the buffers (out=): h' = (1 - z) n + z h, n = tanh(.), r, z = σ(.)
            grad_n = torch.mul(grad, 1 - update, out=grad_steps[t, ..., 2 * size:]).mul_(1 - candidate * candidate)
            torch.mul(grad_n, reset, out=grad_hidden[t, ..., 2 * size:])
            torch.mul(grad_n, hidden_n[t], out=grad_steps[t, ..., :size]).mul_(reset * (1 - reset))
            torch.mul(grad, previous - candidate, out=grad_steps[t, ..., size:2 * size]).mul_(update * (1 - update))
            grad_hidden[t, ..., :2 * size] = grad_steps[t, ..., :2 * size]
            carry = torch.baddbmm(grad * update, grad_hidden[t], weight_t)
        previous = torch.cat([zero.unsqueeze(0), states[:-1]])  # the state entering each step
        # Σ_t h_{t-1}^T ∂a_t for every stream at once: (S, H, L B) x (S, L B, 3H).
        flat_grad = grad_hidden.permute(1, 0, 2, 3).reshape(streams, length * batch, 3 * size)
        grad_weight = torch.bmm(previous.permute(1, 3, 0, 2).reshape(streams, size, length * batch), flat_grad)
        return grad_steps, grad_weight, flat_grad.sum(1, keepdim=True)


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
        history = _Recurrence.apply(steps, weight, bias).permute(1, 2, 0, 3)  # (S, B, L, H)
        layer_inputs = [
            torch.cat([from_padded(history[g * directions + d], dialog_index, positions[d]) for d in range(directions)], -1)
            for g in range(len(grus))
        ]
    return layer_inputs
