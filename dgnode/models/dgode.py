"""DGODE: Dynamic Graph Neural ODE network for multimodal emotion recognition in conversation
(Shou et al., 2024, arXiv 2412.02935), in the layout of this package.

For a batch of dialogues with ``N`` utterances and modalities ``m = 1..M``:

1. speaker embedding ``S_i = W_p p_i`` (``p_i`` one-hot of the utterance's speaker);
2. per modality a context encoder over each dialogue, ``c_m^i``, and ``h_m^i = c_m^i + S_i``:
   a GRU (the paper's; bidirectional, forward-only in causal mode ``wf = 0``, where a backward
   GRU would read the future), or for text (``text_encoder: transformer``) a transformer that
   attends at the feature width and then projects to ``d``
   (:class:`~dgnode.models.dialogue_transformer.DialogueTransformer`, CORECT's text encoder;
   causally masked in causal mode);
3. the multimodal graph of :func:`dgnode.graph.build_edges` (one node per (utterance,
   modality), windows ``wp``/``wf``, inter-modal edges) and ``Â`` of
   :func:`dgnode.graph.normalized_adjacency` (applied as :func:`dgnode.graph.structured_operator`:
   segment sums for whole-dialogue windows, else a CSR product); ``H_0`` stacks the ``h_m^i`` into ``(M N, d)``;
4. ``layers`` adaptive MixHop aggregations ``H_{n+1} = Σ_k w_k Â^k H_n W + H_0``
   (:class:`~dgnode.models.mixhop.AdaptiveMixHop`);
5. the graph ODE ``dH/dt = (Â - I) H + H (W - I) + H(0)`` from ``t = 0`` to ``T``
   (:class:`~dgnode.models.graph_ode.GraphODE`), starting from the MixHop output; its stability
   terms are reported per epoch through :meth:`DGODE.diagnostics`;
6. the classifier on the utterance's modality nodes concatenated, ``(N, M d)``:
   ``l_i = ReLU(W_l H_i + b_l)``, ``softmax(W_s l_i + b_s)``.

Every stage can be switched off for ablations (``use_speaker``, ``use_mixhop``, ``use_ode``;
the modality subset comes from ``data.modalities``, i.e. from ``dims``). With both graph stages
off, the model is the context encoders plus the classifier.

Causality: with ``wf = 0`` and a fixed-step solver or ``exact``, utterance ``i``'s prediction is
a function of utterances ``0..i`` only, bit for bit (``exact`` picks its number of terms from the
batch's dialogue lengths: a prefix of a dialogue may use fewer, agreeing within ``rtol``). An adaptive solver chooses one step sequence for the
whole batch from an error norm over all nodes, so later utterances still move earlier outputs
by about the solver tolerance. The same holds for batching: with a fixed-step solver, a
dialogue's outputs do not depend on the dialogues it is batched with (up to float rounding of
batched matrix products); with an adaptive solver they agree to about ``rtol``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from dgnode.options import ConfigError
from dgnode.graph import UNLIMITED, SparseOperator, WholeDialogueOperator, batch_spectral_bounds, build_edges, structured_operator
from dgnode.models.base import BatchLike, EmotionClassifier, ModelConfig, ModelOutput, select_features
from dgnode.models.dialogue_transformer import DialogueTransformer, default_heads
from dgnode.models.graph_ode import GraphODE, ODEConfig
from dgnode.models.mixhop import AdaptiveMixHop
from dgnode.models.recurrence import ContextEncoder, encode_contexts
from dgnode.models.registry import register_model


@dataclass
class MixHopConfig:
    """``hops``: K, the largest power of ``Â``; ``layers``: stacked MixHop aggregations."""

    hops: int = 3
    layers: int = 1

    def __post_init__(self) -> None:
        if self.hops < 1 or self.layers < 1:
            raise ValueError(f"mixhop.hops and mixhop.layers must be >= 1, got {self.hops}, {self.layers}")


@dataclass
class DGODEConfig(ModelConfig):
    """DGODE hyper-parameters (defaults: the paper's IEMOCAP settings where it gives them).

    Attributes:
        wp, wf: past / future window of intra-modal edges (-1: whole dialogue; ``wf = 0``:
            causal mode, which also makes the context GRUs forward-only).
        alpha: ``α`` of ``Â = (α/2)(I + D^-1/2 A D^-1/2)``, in ``(0, 1]``.
        use_speaker, use_mixhop, use_ode: ablation switches.
        encoder_layers: GRU layers of each context encoder.
        text_encoder: the text modality's context encoder: ``gru`` (the paper's) or
            ``transformer`` (attention at the input width, then a projection to ``hidden``).
        text_layers, text_heads, text_feedforward: of the ``transformer`` text encoder
            (``text_heads`` null: the smallest of 7..14 dividing the text width, else 1).
    """

    name: str = "dgode"
    wp: int = -1
    wf: int = -1
    alpha: float = 0.9
    use_mixhop: bool = True
    use_ode: bool = True
    encoder_layers: int = 1
    text_encoder: Literal["gru", "transformer"] = "gru"
    text_layers: int = 2
    text_heads: int | None = None
    text_feedforward: int = 2048
    mixhop: MixHopConfig = field(default_factory=MixHopConfig)
    ode: ODEConfig = field(default_factory=ODEConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("wp", "wf"):
            if getattr(self, key) < UNLIMITED:
                raise ValueError(f"{key} must be >= 0 or -1 (unlimited), got {getattr(self, key)}")
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if self.encoder_layers < 1:
            raise ValueError(f"encoder_layers must be >= 1, got {self.encoder_layers}")
        if self.text_layers < 1 or (self.text_heads is not None and self.text_heads < 1) or self.text_feedforward < 1:
            raise ValueError(f"text_layers, text_heads and text_feedforward must be >= 1, got "
                             f"{self.text_layers}, {self.text_heads}, {self.text_feedforward}")
        if not self.causal and self.hidden % 2:
            raise ValueError(f"hidden must be even: the bidirectional encoders use hidden/2 units per direction, got {self.hidden}")

    @property
    def causal(self) -> bool:
        return self.wf == 0


class DGODE(nn.Module):
    def __init__(self, config: DGODEConfig, dims: dict[str, int], num_speakers: int, num_classes: int) -> None:
        super().__init__()
        self.config = config
        self.modalities = list(dims)
        hidden = config.hidden
        self.encoders = nn.ModuleDict({m: self._encoder(m, dim, config) for m, dim in dims.items()})
        self.speaker_embedding = nn.Embedding(num_speakers, hidden) if config.use_speaker else None
        self.dropout = nn.Dropout(config.dropout)
        self.mixhop = (
            nn.ModuleList(AdaptiveMixHop(hidden, hidden, config.mixhop.hops) for _ in range(config.mixhop.layers))
            if config.use_mixhop
            else None
        )
        self.ode = GraphODE(hidden, config.ode) if config.use_ode else None
        self.classifier = EmotionClassifier(len(self.modalities) * hidden, hidden, num_classes, config.dropout)

    @staticmethod
    def _encoder(modality: str, dim: int, config: DGODEConfig) -> nn.Module:
        if modality == "text" and config.text_encoder == "transformer":
            heads = default_heads(dim) if config.text_heads is None else config.text_heads
            if dim % heads:
                raise ConfigError(f"model.text_heads {heads} does not divide the text width {dim} the transformer "
                                  "encoder attends at")
            return DialogueTransformer(dim, config.hidden, config.text_layers, heads, config.text_feedforward,
                                       config.dropout, config.causal)
        return ContextEncoder(dim, config.hidden, causal=config.causal, num_layers=config.encoder_layers)

    def forward(self, batch: BatchLike) -> ModelOutput:
        features = select_features(batch, self.modalities)
        speaker = self.speaker_embedding(batch.speakers) if self.speaker_embedding is not None else 0.0
        rows = (batch.dialog_index, batch.position, batch.lengths)
        # The GRU encoders share one batched recurrence (dgnode.models.recurrence).
        grus = [m for m in self.modalities if isinstance(self.encoders[m], ContextEncoder)]
        contexts = dict(zip(grus, encode_contexts([self.encoders[m] for m in grus],
                                                  [features[self.modalities.index(m)] for m in grus], *rows)))
        encoded = [(contexts[m] if m in contexts else self.encoders[m](x, *rows)) + speaker
                   for m, x in zip(self.modalities, features)]
        # Node layout of dgnode.graph: node(m, u) = m * N + u, i.e. modalities stacked.
        h0 = self.dropout(torch.cat(encoded, dim=0))
        h = h0
        nfe = 0
        if self.mixhop is not None or self.ode is not None:
            adjacency = self.adjacency(batch)
            if self.mixhop is not None:
                for layer in self.mixhop:
                    h = self.dropout(layer(h, adjacency, h0))
            if self.ode is not None:
                bounds = batch_spectral_bounds(batch.lengths, len(self.modalities), self.config.wp, self.config.wf,
                                               self.config.alpha)
                h = self.ode(h, adjacency, bounds)
                nfe = self.ode.last_nfe
        num_utterances = features[0].shape[0]
        representations = h.view(len(self.modalities), num_utterances, -1).transpose(0, 1).reshape(num_utterances, -1)
        return ModelOutput(logits=self.classifier(representations), representations=representations, nfe=nfe)

    def diagnostics(self) -> dict[str, float]:
        """The graph ODE's stability terms (:meth:`GraphODE.diagnostics`, keys prefixed ``ode_``;
        empty without the ODE): what the training loop logs per epoch."""
        return {f"ode_{k}": v for k, v in self.ode.diagnostics().items()} if self.ode is not None else {}

    def adjacency(self, batch: BatchLike) -> WholeDialogueOperator | SparseOperator:
        """``Â`` of the batch's multimodal graph, ``(M N, M N)``: structured for whole-dialogue
        windows, else sparse (:func:`dgnode.graph.structured_operator`)."""
        graph = build_edges(
            batch.dialog_index, batch.position, batch.lengths, len(self.modalities), self.config.wp, self.config.wf
        )
        return structured_operator(graph, self.config.alpha, batch.dialog_index, batch.lengths,
                                   dtype=batch.features[self.modalities[0]].dtype)


@register_model("dgode", DGODEConfig)
def build_dgode(config: DGODEConfig, dims: dict[str, int], num_speakers: int, num_classes: int) -> nn.Module:
    return DGODE(config, dims, num_speakers, num_classes)
