"""Building blocks of CORECT (:mod:`dgnode.models.corect`): the relational temporal graph
(RT-GRAPH) and the pairwise cross-modal attention (P-CM), both with an exact causal mode.

Sequences here are padded dialogues ``(B, L, d)`` with a key padding mask ``(B, L)``
(``True`` = padding), the layout :func:`dgnode.models.base.to_padded` produces.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from dgnode.graph import INTRA_FUTURE, INTRA_PAST, SELF, MultimodalGraph, relation_types


def padding_mask(lengths: Tensor, max_length: int) -> Tensor:
    """``(B,)`` lengths -> ``(B, L)`` bool, ``True`` where a position is padding."""
    return torch.arange(max_length, device=lengths.device)[None, :] >= lengths[:, None]


def future_mask(length: int, device: torch.device | None = None) -> Tensor:
    """``(L, L)`` bool, ``True`` above the diagonal: query ``i`` may not attend to key ``j > i``."""
    return torch.ones(length, length, dtype=torch.bool, device=device).triu(1)


class AttentionBlock(nn.Module):
    r"""A pre-norm transformer block whose queries may come from another sequence (MulT / CORECT).

    .. math::

        Z &= X + \mathrm{MHA}\big(\mathrm{LN}_1(X),\ \mathrm{LN}_1(Y),\ \mathrm{LN}_1(Y)\big) \\
        \mathrm{out} &= Z + W_2\,\mathrm{ReLU}\big(W_1\,\mathrm{LN}_2(Z)\big)

    with ``Y = X`` for self-attention (``cross=False``). Queries, keys and values go through the
    same norm ``LN_1``, as in CORECT's release (MulT's layer). With ``causal``, query
    position ``i`` attends to key positions ``j <= i`` only, so output ``i`` is a function of
    inputs ``0..i``. Masked keys get exactly zero weight, so in a batch the earlier outputs are
    bit-identical whatever the later positions hold.

    Shapes: ``x (B, L, d)``, ``source (B, L, d)`` or ``None``, ``key_padding (B, L)`` ->
    ``(B, L, d)``.
    """

    def __init__(self, channels: int, heads: int, cross: bool, dropout: float = 0.0, feedforward: int = 4) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"attention width {channels} is not divisible by {heads} heads")
        self.cross = cross
        self.attention_norm = nn.LayerNorm(channels)
        self.attention = nn.MultiheadAttention(channels, heads, dropout=dropout, batch_first=True)
        self.feedforward_norm = nn.LayerNorm(channels)
        self.feedforward = nn.Sequential(
            nn.Linear(channels, feedforward * channels),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(feedforward * channels, channels),
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, source: Tensor | None, key_padding: Tensor, causal: bool) -> Tensor:
        if (source is None) == self.cross:
            raise ValueError("a cross-attention block needs a source sequence and a self-attention block takes none")
        query = self.attention_norm(x)
        keys = query if source is None else self.attention_norm(source)
        mask = future_mask(x.shape[1], x.device) if causal else None
        attended, _ = self.attention(query, keys, keys, key_padding_mask=key_padding, attn_mask=mask, need_weights=False)
        x = x + self.dropout(attended)
        return x + self.dropout(self.feedforward(self.feedforward_norm(x)))


class AttentionStack(nn.Module):
    r"""MulT's encoder as CORECT's release uses it: the inputs scaled by :math:`\sqrt{d}`, then
    ``layers`` :class:`AttentionBlock` s and a final LayerNorm. With ``cross`` every layer
    attends to the same (scaled) source sequence.

    The scaling (MulT's ``embed_scale``, kept by the release although it adds no positional
    embedding for it to balance) makes the residual stream ``sqrt(d)`` times larger than what
    each block adds at initialisation (the blocks see it through their LayerNorms), so a stack
    starts close to ``LN(X)``, a pass-through of its query sequence.
    """

    def __init__(self, channels: int, heads: int, layers: int, cross: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.scale = math.sqrt(channels)
        self.blocks = nn.ModuleList(AttentionBlock(channels, heads, cross, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor, key_padding: Tensor, causal: bool, source: Tensor | None = None) -> Tensor:
        x = x * self.scale
        source = source * self.scale if source is not None else None
        for block in self.blocks:
            x = block(x, source, key_padding, causal)
        return self.norm(x)


class PairwiseCrossModal(nn.Module):
    r"""P-CM: cross-modal attention between every ordered pair of modalities over the dialogue.

    For a target modality ``a`` and each source ``b != a``, a cross-modal transformer lets the
    sequence of ``a`` query the sequence of ``b``:

    .. math::

        C_{b \to a} = \mathrm{CrossTransformer}_{ab}(Q = X_a,\ K = V = X_b)
        \in \mathbb{R}^{B \times L \times d},

    then a self-attention "memory" transformer over the concatenation
    ``[C_{b \to a}]_{b \ne a} \in \mathbb{R}^{B \times L \times (M-1) d}`` gives modality
    ``a``'s output; the outputs of all ``M`` modalities are concatenated:
    ``(B, L, M (M - 1) d)``. With ``causal`` every attention is masked so that position ``i``
    sees positions ``0..i`` only (CORECT's offline model attends to the whole dialogue).

    Args:
        modalities: ``M >= 2`` modality names, in node order.
        channels: ``d``, the width of each modality's sequence.
        heads, layers: of each cross-modal transformer.
        memory_heads, memory_layers: of each memory transformer (``memory_layers = 0``: none).
    """

    def __init__(self, modalities: list[str], channels: int, heads: int, layers: int,
                 memory_heads: int, memory_layers: int, dropout: float = 0.0) -> None:
        super().__init__()
        if len(modalities) < 2:
            raise ValueError(f"pairwise cross-modal attention needs at least two modalities, got {modalities}")
        self.modalities = list(modalities)
        self.pairs = [(a, b) for a in self.modalities for b in self.modalities if a != b]
        self.cross = nn.ModuleDict(
            {f"{b}_to_{a}": AttentionStack(channels, heads, layers, cross=True, dropout=dropout) for a, b in self.pairs}
        )
        memory_width = channels * (len(modalities) - 1)
        self.memory = nn.ModuleDict(
            {a: AttentionStack(memory_width, memory_heads, memory_layers, dropout=dropout) for a in self.modalities}
        ) if memory_layers > 0 else None
        self.out_channels = len(modalities) * memory_width

    def forward(self, sequences: dict[str, Tensor], key_padding: Tensor, causal: bool) -> Tensor:
        outputs = []
        for a in self.modalities:
            crossed = [
                self.cross[f"{b}_to_{a}"](sequences[a], key_padding, causal, source=sequences[b])
                for b in self.modalities
                if b != a
            ]
            joined = torch.cat(crossed, dim=-1)
            if self.memory is not None:
                joined = self.memory[a](joined, key_padding, causal)
            outputs.append(joined)
        return torch.cat(outputs, dim=-1)


GraphNorm = Literal["batch", "layer"]


class RelationalTemporalGraph(nn.Module):
    r"""RT-GRAPH: ``RGCNConv`` then ``TransformerConv`` over the (utterance, modality) graph.

    Nodes and edges come from :func:`dgnode.graph.build_edges` (modality-major nodes ``V = M N``);
    relations are the per-modality temporal kinds (past, future, self) and the ordered
    modality pairs of :func:`dgnode.graph.relation_types`, renumbered compactly over the kinds
    the windows can produce (``wf = 0`` has no future relation, so no weight goes unused):

    .. math::

        h_v' &= W_0 x_v + \sum_{r} \frac{1}{|\mathcal{N}_r(v)|} \sum_{u \in \mathcal{N}_r(v)} W_r x_u
            \qquad \text{(RGCN, mean per relation)} \\
        h_v'' &= \mathrm{LeakyReLU}\Big(\mathrm{Norm}\big(\big\Vert_{k=1}^{K}\ W^k_s g_v +
            \sum_{u \in \mathcal{N}(v)} \alpha^k_{vu} W^k_v g_u\big)\Big),\quad
            \alpha^k_{vu} = \mathrm{softmax}_u \frac{(W^k_q g_v)^\top W^k_k g_u}{\sqrt{d}}

    Output ``(V, K d)`` (``K`` heads concatenated). ``norm``:

    * ``batch`` (the release): ``g = h'`` and ``Norm`` is BatchNorm over the nodes. In training
      its statistics mix all nodes of the batch (a causal model's training-time outputs see
      batch-mates and later utterances through the mean and variance); in evaluation the
      running statistics make it a fixed per-feature affine map, so predictions are per node:
      causal mode is exact and a dialogue's outputs do not depend on its batch-mates.
    * ``layer``: ``g = LN(h')`` and ``Norm`` is LayerNorm, per node in training too. (The input
      norm: the RGCN sums up to ``3M + M(M-1)`` relation means, so its output scale grows with
      the relation count.)

    Args:
        modalities: ``M``.
        channels: ``d`` in and per head out.
        heads: ``K``.
        has_past, has_future, has_self: which temporal kinds the windows produce.
        norm: ``batch`` or ``layer``.
    """

    def __init__(self, modalities: int, channels: int, heads: int, has_past: bool, has_future: bool,
                 has_self: bool, norm: GraphNorm = "batch") -> None:
        super().__init__()
        from torch_geometric.nn import RGCNConv, TransformerConv

        m = modalities
        kinds = [k for k, present in ((INTRA_PAST, has_past), (INTRA_FUTURE, has_future), (SELF, has_self)) if present]
        used = [k * m + modality for k in kinds for modality in range(m)] + list(range(3 * m, 3 * m + m * (m - 1)))
        total = 3 * m + m * (m - 1)
        compact = torch.full((total,), -1, dtype=torch.long)
        compact[torch.tensor(used, dtype=torch.long)] = torch.arange(len(used))
        self.register_buffer("relation_index", compact, persistent=False)
        self.num_relations = len(used)
        self.out_channels = heads * channels
        if self.num_relations == 0:
            raise ValueError("the RT-GRAPH has no relation: a single modality with wp = wf = 0 and no self loops")
        if norm not in ("batch", "layer"):
            raise ValueError(f"norm must be 'batch' or 'layer', got {norm!r}")
        self.rgcn = RGCNConv(channels, channels, self.num_relations)
        self.transformer_norm = nn.LayerNorm(channels) if norm == "layer" else nn.Identity()
        self.transformer = TransformerConv(channels, channels, heads=heads, concat=True)
        self.norm = nn.LayerNorm(self.out_channels) if norm == "layer" else nn.BatchNorm1d(self.out_channels)

    def relations(self, graph: MultimodalGraph) -> Tensor:
        """``(E,)`` compact relation id of every edge of ``graph``."""
        full, _ = relation_types(graph)
        relation = self.relation_index[full]
        if bool((relation < 0).any()):
            kinds = sorted({int(k) for k in graph.edge_type[relation < 0].tolist()})
            raise ValueError(f"graph has edge kinds {kinds} this RT-GRAPH was not built for (check wp/wf/self_loops)")
        return relation

    def forward(self, x: Tensor, graph: MultimodalGraph) -> Tensor:
        h = self.rgcn(x, graph.edge_index, self.relations(graph))
        h = self.transformer(self.transformer_norm(h), graph.edge_index)
        return nn.functional.leaky_relu(self.norm(h))


__all__ = [
    "AttentionBlock",
    "GraphNorm",
    "AttentionStack",
    "PairwiseCrossModal",
    "RelationalTemporalGraph",
    "future_mask",
    "padding_mask",
]
