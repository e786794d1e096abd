"""build_edges: edge sets against a brute-force reference, count formulas, causal mode."""

from __future__ import annotations

import itertools

import pytest
import torch

from dgnode.graph import (
    EDGE_TYPES,
    INTER_MODAL,
    INTRA_FUTURE,
    INTRA_PAST,
    SELF,
    build_edges,
    relation_types,
)


def layout(lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    lengths_t = torch.tensor(lengths)
    dialog_index = torch.repeat_interleave(torch.arange(len(lengths)), lengths_t)
    position = torch.cat([torch.arange(n) for n in lengths])
    return dialog_index, position, lengths_t


def reference_edges(lengths: list[int], modalities: int, wp: int, wf: int, self_loops: bool) -> set[tuple[int, int, int]]:
    """(source, target, type) with explicit loops over dialogues and utterances."""
    n = sum(lengths)
    edges = set()
    start = 0
    for length in lengths:
        for t in range(length):
            for s in range(length):
                if s < t and (wp == -1 or t - s <= wp):
                    kind = INTRA_PAST
                elif s > t and (wf == -1 or s - t <= wf):
                    kind = INTRA_FUTURE
                elif s == t and self_loops:
                    kind = SELF
                else:
                    continue
                for m in range(modalities):
                    edges.add((m * n + start + s, m * n + start + t, kind))
        start += length
    for u in range(n):
        for a, b in itertools.permutations(range(modalities), 2):
            edges.add((a * n + u, b * n + u, INTER_MODAL))
    return edges


def as_set(graph) -> set[tuple[int, int, int]]:
    triples = zip(graph.edge_index[0].tolist(), graph.edge_index[1].tolist(), graph.edge_type.tolist())
    return set(triples)


@pytest.mark.parametrize("lengths", [[4, 1, 3], [1], [6], [2, 5, 1, 3]])
@pytest.mark.parametrize("wp,wf", [(-1, -1), (2, 1), (1, 0), (0, 0), (-1, 0), (0, 2), (3, -1)])
@pytest.mark.parametrize("modalities", [1, 3])
def test_edges_match_brute_force_reference(lengths, wp, wf, modalities):
    graph = build_edges(*layout(lengths), modalities=modalities, wp=wp, wf=wf)
    expected = reference_edges(lengths, modalities, wp, wf, self_loops=False)
    assert as_set(graph) == expected
    assert graph.num_edges == len(expected)  # no duplicates
    assert graph.num_nodes == modalities * sum(lengths)


def test_edge_counts_follow_window_formulas():
    # lengths 4, 1, 3; wp = 2, wf = 1; M = 2.
    # past per modality:   sum_p min(p, 2)        = (0+1+2+2) + 0 + (0+1+2) = 8
    # future per modality: sum_p min(L-1-p, 1)    = (1+1+1+0) + 0 + (1+1+0) = 5
    # inter-modal:         M (M-1) N = 2 * 1 * 8  = 16
    graph = build_edges(*layout([4, 1, 3]), modalities=2, wp=2, wf=1)
    assert graph.count_edges() == {"intra_past": 16, "intra_future": 10, "self": 0, "inter_modal": 16}
    assert graph.num_edges == 42


def test_unlimited_windows_connect_whole_dialogues():
    # L(L-1)/2 past and future pairs per dialogue: lengths 5, 3 -> 10 + 3 = 13 each way.
    graph = build_edges(*layout([5, 3]), modalities=1, wp=-1, wf=-1)
    assert graph.count_edges() == {"intra_past": 13, "intra_future": 13, "self": 0, "inter_modal": 0}


def test_causal_mode_has_no_edge_from_a_later_utterance():
    dialog_index, position, lengths = layout([5, 4])
    graph = build_edges(dialog_index, position, lengths, modalities=3, wp=-1, wf=0)
    source_position = position[graph.node_utterance[graph.edge_index[0]]]
    target_position = position[graph.node_utterance[graph.edge_index[1]]]
    assert bool((source_position <= target_position).all())
    assert graph.count_edges()["intra_future"] == 0
    assert graph.count_edges()["intra_past"] == 3 * (10 + 6)


def test_edges_never_cross_dialogues():
    dialog_index, position, lengths = layout([3, 4, 2])
    graph = build_edges(dialog_index, position, lengths, modalities=2, wp=-1, wf=-1)
    dialog_of_node = dialog_index[graph.node_utterance]
    assert torch.equal(dialog_of_node[graph.edge_index[0]], dialog_of_node[graph.edge_index[1]])


def test_self_loops_add_one_edge_per_node():
    graph = build_edges(*layout([3, 2]), modalities=2, wp=1, wf=1, self_loops=True)
    assert graph.count_edges()["self"] == graph.num_nodes == 10
    assert as_set(graph) == reference_edges([3, 2], 2, 1, 1, self_loops=True)


def test_node_layout_is_modality_major():
    graph = build_edges(*layout([2, 1]), modalities=3, wp=1, wf=1)
    assert graph.node_utterance.tolist() == [0, 1, 2] * 3
    assert graph.node_modality.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert graph.num_modalities == 3 and graph.num_utterances == 3


def test_rows_out_of_dialogue_order_are_rejected():
    with pytest.raises(ValueError, match="concatenated dialogue by dialogue"):
        build_edges(torch.tensor([0, 1, 0]), torch.tensor([0, 0, 1]), torch.tensor([2, 1]), 1, 1, 1)


@pytest.mark.parametrize("wp,wf", [(-2, 0), (0, -3)])
def test_bad_windows_are_rejected(wp, wf):
    with pytest.raises(ValueError, match="or -1 for unlimited"):
        build_edges(*layout([3]), modalities=1, wp=wp, wf=wf)


def test_relation_types_split_kinds_by_modality():
    graph = build_edges(*layout([3]), modalities=3, wp=-1, wf=-1)
    relation, count = relation_types(graph)
    assert count == 3 * 3 + 3 * 2
    source_modality = graph.node_modality[graph.edge_index[0]]
    target_modality = graph.node_modality[graph.edge_index[1]]
    seen = {}
    for r, kind, a, b in zip(relation.tolist(), graph.edge_type.tolist(), source_modality.tolist(), target_modality.tolist()):
        key = (EDGE_TYPES[kind], b) if kind != INTER_MODAL else ("inter", a, b)
        assert seen.setdefault(key, r) == r  # one id per (kind, modality) / (a, b)
    # intra past/future of 3 modalities + 6 ordered modality pairs, all distinct ids below `count`
    assert len(seen) == 6 + 6
    assert len(set(seen.values())) == len(seen)
    assert max(seen.values()) < count
