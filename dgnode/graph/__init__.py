"""Conversation graphs over (utterance, modality) nodes: edges, relation types, normalised adjacency
(as a sparse operator, or structured for whole-dialogue windows), spectral bounds."""

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
from dgnode.graph.spectrum import SpectralBounds, batch_spectral_bounds, dialogue_spectral_bounds
from dgnode.graph.whole_dialogue import WholeDialogueOperator, structured_operator

__all__ = [
    "EDGE_TYPES",
    "INTER_MODAL",
    "INTRA_FUTURE",
    "INTRA_PAST",
    "SELF",
    "SparseOperator",
    "SpectralBounds",
    "UNLIMITED",
    "WholeDialogueOperator",
    "MultimodalGraph",
    "adjacency_operator",
    "batch_spectral_bounds",
    "build_edges",
    "dialogue_spectral_bounds",
    "normalized_adjacency",
    "relation_types",
    "structured_operator",
]
