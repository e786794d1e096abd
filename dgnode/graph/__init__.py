"""Conversation graphs over (utterance, modality) nodes: edges, relation types, normalised adjacency."""

from dgnode.graph.adjacency import SparseOperator, adjacency_operator, normalized_adjacency
from dgnode.graph.edges import (
    EDGE_TYPES,
    INTER_MODAL,
    INTRA_FUTURE,
    INTRA_PAST,
    SELF,
    UNLIMITED,
    MultimodalGraph,
    build_edges,
    relation_types,
)

__all__ = [
    "EDGE_TYPES",
    "INTER_MODAL",
    "INTRA_FUTURE",
    "INTRA_PAST",
    "SELF",
    "SparseOperator",
    "UNLIMITED",
    "MultimodalGraph",
    "adjacency_operator",
    "build_edges",
    "normalized_adjacency",
    "relation_types",
]
