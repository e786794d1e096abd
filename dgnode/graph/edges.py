"""The multimodal conversation graph: one node per (utterance, modality).

A batch of ``B`` dialogues with ``N`` utterances in total and ``M`` modalities becomes one
disjoint graph with ``V = M * N`` nodes, numbered modality-major::

    node(m, u) = m * N + u          m in [0, M), u in [0, N) (the batch's utterance row)

so that stacking the per-modality feature matrices ``[X_0; X_1; ...; X_{M-1}]`` (each ``(N, d)``)
gives the node feature matrix ``(V, d)`` without any gather.

Edges follow PyG's convention: ``edge_index[0]`` is the source and ``edge_index[1]`` the target
(messages flow source -> target). Two kinds of edges:

* **intra-modal**: within one modality, from utterance ``s`` to utterance ``t`` of the *same*
  dialogue when ``pos(t) - wp <= pos(s) <= pos(t) + wf`` (``wp``/``wf`` = -1: unlimited). With
  ``wf = 0`` (causal mode) no edge runs from a later utterance into an earlier one, so a node
  only ever sees the past and the present.
* **inter-modal**: between the nodes of the same utterance in two different modalities, in both
  directions (``M (M - 1)`` edges per utterance).

Edge type ids (:data:`EDGE_TYPES`), usable directly as relation types (RGCN / CORECT):

=====  ==============  ==========================================================
 id     name            meaning
=====  ==============  ==========================================================
 0      intra_past      same modality, source earlier in the dialogue than target
 1      intra_future    same modality, source later than target (absent when wf=0)
 2      self            node to itself (only with ``self_loops=True``)
 3      inter_modal     same utterance, different modality
=====  ==============  ==========================================================

:func:`relation_types` refines these into per-modality relations for relational GNNs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "EDGE_TYPES", "INTER_MODAL", "INTRA_FUTURE", "INTRA_PAST", "MultimodalGraph", "SELF", "UNLIMITED",
    "build_edges", "relation_types",
]

INTRA_PAST = 0
INTRA_FUTURE = 1
SELF = 2
INTER_MODAL = 3
EDGE_TYPES = ("intra_past", "intra_future", "self", "inter_modal")
UNLIMITED = -1


@dataclass
class MultimodalGraph:
    """A disjoint batch graph over (utterance, modality) nodes; see the module docstring.

    Attributes:
        edge_index: ``(2, E)`` long, row 0 = source node, row 1 = target node.
        edge_type: ``(E,)`` long, ids of :data:`EDGE_TYPES`.
        num_nodes: ``V = num_modalities * num_utterances``.
        node_utterance: ``(V,)`` long, the batch utterance row of each node.
        node_modality: ``(V,)`` long, the modality index of each node.
    """

    edge_index: Tensor
    edge_type: Tensor
    num_nodes: int
    node_utterance: Tensor
    node_modality: Tensor

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def num_modalities(self) -> int:
        return int(self.node_modality.max().item()) + 1 if self.num_nodes else 0

    @property
    def num_utterances(self) -> int:
        return self.num_nodes // max(self.num_modalities, 1)

    def count_edges(self) -> dict[str, int]:
        """Number of edges of each type, by name."""
        counts = torch.bincount(self.edge_type, minlength=len(EDGE_TYPES)).tolist()
        return dict(zip(EDGE_TYPES, counts))

    def to(self, device: torch.device | str) -> "MultimodalGraph":
        return MultimodalGraph(
            edge_index=self.edge_index.to(device),
            edge_type=self.edge_type.to(device),
            num_nodes=self.num_nodes,
            node_utterance=self.node_utterance.to(device),
            node_modality=self.node_modality.to(device),
        )


def build_edges(
    dialog_index: Tensor,
    position: Tensor,
    lengths: Tensor,
    modalities: int,
    wp: int,
    wf: int,
    self_loops: bool = False,
) -> MultimodalGraph:
    """Build the multimodal graph of a batch of dialogues without looping over them.

    Args:
        dialog_index: ``(N,)`` long, the dialogue of each utterance row.
        position: ``(N,)`` long, the index of each row inside its dialogue.
        lengths: ``(B,)`` long, utterances per dialogue. Rows must be concatenated dialogue by
            dialogue in order (``row = sum(lengths[:d]) + position``), the
            :class:`~dgnode.features.dataset.ConversationBatch` layout.
        modalities: ``M >= 1``, the number of modality nodes per utterance.
        wp: past window: a target at position ``p`` receives from positions ``>= p - wp``
            (``-1``: from the start of the dialogue).
        wf: future window: receives from positions ``<= p + wf`` (``0``: causal, ``-1``: to the
            end of the dialogue).
        self_loops: also add one ``self`` edge per node (DGODE does not need them: its
            normalised adjacency adds the identity itself).

    Every target at position ``p`` of a dialogue of length ``L`` gets ``hi - lo + 1`` candidate
    sources, ``lo = max(0, p - wp)``, ``hi = min(L - 1, p + wf)``; the candidates of all rows are
    laid out with one ``repeat_interleave``, so the cost is ``O(E)`` tensor work.
    """
    _check_window("wp", wp)
    _check_window("wf", wf)
    if modalities < 1:
        raise ValueError(f"modalities must be >= 1, got {modalities}")
    device = position.device
    dialog_index = dialog_index.long()
    position = position.long()
    lengths = lengths.long().to(device)
    num_rows = int(position.numel())
    rows = torch.arange(num_rows, device=device)
    starts = torch.cumsum(lengths, 0) - lengths
    if num_rows and not torch.equal(starts[dialog_index] + position, rows):
        raise ValueError(
            "utterance rows are not concatenated dialogue by dialogue in order "
            "(expected row == sum(lengths[:dialog]) + position)"
        )

    length_of_row = lengths[dialog_index]
    low = (position - wp).clamp(min=0) if wp != UNLIMITED else torch.zeros_like(position)
    high = torch.minimum(position + wf, length_of_row - 1) if wf != UNLIMITED else length_of_row - 1
    counts = high - low + 1  # >= 1: the window always contains the row itself
    target = torch.repeat_interleave(rows, counts)
    run_starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    offset = torch.arange(target.numel(), device=device) - run_starts
    source = starts[dialog_index][target] + low[target] + offset
    kind = torch.where(
        source < target,
        torch.full_like(source, INTRA_PAST),
        torch.where(source > target, torch.full_like(source, INTRA_FUTURE), torch.full_like(source, SELF)),
    )
    if not self_loops:
        keep = kind != SELF
        source, target, kind = source[keep], target[keep], kind[keep]

    sources, targets, kinds = [], [], []
    for m in range(modalities):
        sources.append(source + m * num_rows)
        targets.append(target + m * num_rows)
        kinds.append(kind)
    for a in range(modalities):
        for b in range(modalities):
            if a != b:
                sources.append(rows + a * num_rows)
                targets.append(rows + b * num_rows)
                kinds.append(torch.full_like(rows, INTER_MODAL))
    edge_index = torch.stack([torch.cat(sources), torch.cat(targets)])
    return MultimodalGraph(
        edge_index=edge_index,
        edge_type=torch.cat(kinds),
        num_nodes=modalities * num_rows,
        node_utterance=rows.repeat(modalities),
        node_modality=torch.arange(modalities, device=device).repeat_interleave(num_rows),
    )


def relation_types(graph: MultimodalGraph) -> tuple[Tensor, int]:
    """Per-modality relation ids for relational GNNs (RGCNConv's ``edge_type``).

    With ``M`` modalities: intra-modal kinds ``k`` in {past, future, self} of modality ``m``
    get id ``k * M + m`` (``3M`` ids); an inter-modal edge from modality ``a`` to ``b`` gets
    ``3M + a * (M - 1) + (b if b < a else b - 1)`` (``M (M - 1)`` ids).

    Returns:
        ``((E,) long relation ids, number of relations = 3M + M(M-1))``.
    """
    m = graph.num_modalities
    source_modality = graph.node_modality[graph.edge_index[0]]
    target_modality = graph.node_modality[graph.edge_index[1]]
    intra = graph.edge_type * m + target_modality
    column = torch.where(target_modality < source_modality, target_modality, target_modality - 1)
    inter = 3 * m + source_modality * (m - 1) + column
    relation = torch.where(graph.edge_type == INTER_MODAL, inter, intra)
    return relation, 3 * m + m * (m - 1)


def _check_window(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < UNLIMITED:
        raise ValueError(f"{name} must be an integer >= 0, or -1 for unlimited; got {value!r}")
