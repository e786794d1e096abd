"""CORECT: Conversation understanding using RElational Temporal graph neural networks with
auxiliary Cross-modality inTeraction (Nguyen et al., EMNLP 2023), in the layout of this package.

For a batch of dialogues with ``N`` utterances and modalities ``m = 1..M``:

1. per-modality encoders ``e_m: (N, D_m) -> (N, d)``: ``linear`` (CORECT's audio/visual
   encoder, ``ReLU(W_2 ReLU(W_1 x))``, context-free), ``gru`` (a GRU over the dialogue,
   bidirectional; forward-only in causal mode) or ``transformer`` (a projection to ``d`` and
   self-attention over the dialogue; causally masked in causal mode), plus the speaker
   embedding: ``x_m^i = e_m(u_m)^i + S_{s_i}``;
2. **RT-GRAPH** (:class:`~dgnode.models.corect_layers.RelationalTemporalGraph`): one node per
   (utterance, modality), intra-modal temporal edges inside the window ``[i - wp, i + wf]``,
   cross-modal edges between an utterance's modality nodes (:func:`dgnode.graph.build_edges`),
   a relation per (temporal kind, modality) and per ordered modality pair
   (:func:`dgnode.graph.relation_types`); ``RGCNConv`` then a ``K``-head ``TransformerConv``:
   ``(M N, d) -> (M N, K d)``, read back per utterance as ``(N, M K d)``;
3. **P-CM** (:class:`~dgnode.models.corect_layers.PairwiseCrossModal`): cross-modal attention
   from every modality to every other one over the dialogue sequence plus a self-attention
   memory per modality: ``(N, M (M - 1) d)``;
4. the concatenation ``[RT-GRAPH; P-CM]`` through the classifier
   ``W_s ReLU(W_l h + b_l) + b_s`` (:class:`~dgnode.models.base.EmotionClassifier`).

Every part can be switched off (``use_rtgraph``, ``use_pcm``, ``use_speaker``); the modality
subset is ``data.modalities`` (P-CM needs two or more). With both branches off, the encoded
modalities are concatenated straight into the classifier (CORECT's ``no_gnn`` model).

**Causal mode** (``wf = 0``): no future edge, forward-only GRUs, and every attention (text
transformer, P-CM) masked to positions ``<= i``. Utterance ``i``'s logits are then a function of
utterances ``0..i`` alone, bit for bit: changing a later utterance leaves them unchanged
(``torch.equal``), which :mod:`dgnode.streaming` relies on.

Differences from the released CORECT code, all deliberate: LayerNorm instead of BatchNorm after
the graph transformer (per node, so causal and batch-independent in training too) and a
LayerNorm on its input (see :class:`~dgnode.models.corect_layers.RelationalTemporalGraph`); attention
ignores padded positions (key padding mask); the text transformer projects to ``d`` before
attending instead of attending at the input width; windows are inclusive (``i + wf`` is a
neighbour; CORECT's slicing stops at ``i + wf - 1``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from dgnode.options import ConfigError
from dgnode.graph import UNLIMITED, build_edges
from dgnode.models.base import (
    BatchLike,
    EmotionClassifier,
    ModelConfig,
    ModelOutput,
    from_padded,
    select_features,
    to_padded,
)
from dgnode.models.corect_layers import AttentionStack, PairwiseCrossModal, RelationalTemporalGraph, padding_mask
from dgnode.models.recurrence import ContextEncoder
from dgnode.models.registry import register_model

EncoderKind = Literal["linear", "gru", "transformer"]
ENCODER_KINDS = ("linear", "gru", "transformer")


@dataclass
class RTGraphConfig:
    """RT-GRAPH: ``heads`` of the TransformerConv (output ``heads * hidden`` per node);
    ``self_loops``: a self edge per node as its own relation (CORECT's temporal type 0)."""

    heads: int = 7
    self_loops: bool = True

    def __post_init__(self) -> None:
        if self.heads < 1:
            raise ValueError(f"rtgraph.heads must be >= 1, got {self.heads}")


@dataclass
class PCMConfig:
    """P-CM: ``layers``/``heads`` of each pairwise cross-modal transformer,
    ``memory_layers``/``memory_heads`` of each modality's self-attention memory (0: none)."""

    heads: int = 2
    layers: int = 2
    memory_heads: int = 2
    memory_layers: int = 3

    def __post_init__(self) -> None:
        if self.heads < 1 or self.layers < 1 or self.memory_heads < 1 or self.memory_layers < 0:
            raise ValueError(
                "pcm.heads, pcm.layers and pcm.memory_heads must be >= 1 and pcm.memory_layers >= 0, "
                f"got {self.heads}, {self.layers}, {self.memory_heads}, {self.memory_layers}"
            )


@dataclass
class CORECTConfig(ModelConfig):
    """CORECT hyper-parameters (defaults: the released IEMOCAP script, ``run_train.sh``:
    hidden 100, dropout 0.5, ``wp`` 11, ``wf`` 5, 7 graph-transformer heads, 2 cross-modal
    layers with 2 heads, 3 memory layers with 2 heads).

    Attributes:
        wp, wf: past / future window of the temporal edges (-1: whole dialogue; ``wf = 0``:
            causal mode, which also makes the sequence encoders and every attention causal).
        text_encoder, audio_encoder, vision_encoder: ``linear``, ``gru`` or ``transformer``.
        encoder_layers: layers of the ``gru`` / ``transformer`` encoders.
        encoder_heads: heads of the ``transformer`` encoders.
        use_rtgraph, use_pcm, use_speaker: ablation switches.
        rtgraph, pcm: the two branches' settings.
    """

    name: str = "corect"
    hidden: int = 100
    dropout: float = 0.5
    wp: int = 11
    wf: int = 5
    text_encoder: EncoderKind = "gru"
    audio_encoder: EncoderKind = "linear"
    vision_encoder: EncoderKind = "linear"
    encoder_layers: int = 1
    encoder_heads: int = 4
    use_rtgraph: bool = True
    use_pcm: bool = True
    rtgraph: RTGraphConfig = field(default_factory=RTGraphConfig)
    pcm: PCMConfig = field(default_factory=PCMConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("wp", "wf"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < UNLIMITED:
                raise ValueError(f"{key} must be >= 0 or -1 (unlimited), got {value!r}")
        kinds = self.encoder_kinds()
        for modality, kind in kinds.items():
            if kind not in ENCODER_KINDS:
                raise ValueError(f"{modality}_encoder must be one of {', '.join(ENCODER_KINDS)}, got {kind!r}")
        if self.encoder_layers < 1 or self.encoder_heads < 1:
            raise ValueError(f"encoder_layers and encoder_heads must be >= 1, got {self.encoder_layers}, {self.encoder_heads}")
        if not self.causal and "gru" in kinds.values() and self.hidden % 2:
            raise ValueError(f"hidden must be even: a bidirectional GRU encoder uses hidden/2 units per direction, got {self.hidden}")
        if "transformer" in kinds.values() and self.hidden % self.encoder_heads:
            raise ValueError(f"hidden {self.hidden} is not divisible by encoder_heads {self.encoder_heads}")
        if self.use_pcm and self.hidden % self.pcm.heads:
            raise ValueError(f"hidden {self.hidden} is not divisible by pcm.heads {self.pcm.heads}")

    @property
    def causal(self) -> bool:
        return self.wf == 0

    def encoder_kinds(self) -> dict[str, str]:
        return {"text": self.text_encoder, "audio": self.audio_encoder, "vision": self.vision_encoder}


class UnimodalEncoder(nn.Module):
    """One modality's encoder, ``(N, in_dim) -> (N, hidden)``; see the module docstring.

    ``linear`` looks at one utterance; ``gru`` and ``transformer`` at the dialogue (only its
    past and present when ``causal``).
    """

    def __init__(self, kind: str, in_dim: int, hidden: int, causal: bool, layers: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.kind = kind
        self.causal = causal
        if kind == "linear":
            self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        elif kind == "gru":
            self.net = ContextEncoder(in_dim, hidden, causal=causal, num_layers=layers)
        elif kind == "transformer":
            self.projection = nn.Linear(in_dim, hidden)
            self.net = AttentionStack(hidden, heads, layers, dropout=dropout)
        else:
            raise ValueError(f"unknown encoder kind {kind!r}; expected one of {', '.join(ENCODER_KINDS)}")

    def forward(self, x: Tensor, batch: BatchLike) -> Tensor:
        if self.kind == "linear":
            return self.net(x)
        if self.kind == "gru":
            return self.net(x, batch.dialog_index, batch.position, batch.lengths)
        padded = to_padded(self.projection(x), batch.dialog_index, batch.position, batch.lengths)
        encoded = self.net(padded, padding_mask(batch.lengths, padded.shape[1]), self.causal)
        return from_padded(encoded, batch.dialog_index, batch.position)


class CORECT(nn.Module):
    """CORECT over a :class:`~dgnode.features.dataset.ConversationBatch`; see the module docstring.

    Shapes: ``N`` utterances, ``M`` modalities, ``d = hidden``, ``K = rtgraph.heads``;
    representations ``(N, M K d + M (M - 1) d)`` with both branches, logits ``(N, C)``.
    """

    def __init__(self, config: CORECTConfig, dims: dict[str, int], num_speakers: int, num_classes: int) -> None:
        super().__init__()
        self.config = config
        self.modalities = list(dims)
        hidden = config.hidden
        kinds = config.encoder_kinds()
        unknown = [m for m in self.modalities if m not in kinds]
        if unknown:
            raise ValueError(f"CORECT has no encoder setting for modalities {unknown}")
        self.encoders = nn.ModuleDict(
            {
                m: UnimodalEncoder(kinds[m], dim, hidden, config.causal, config.encoder_layers, config.encoder_heads, config.dropout)
                for m, dim in dims.items()
            }
        )
        self.speaker_embedding = nn.Embedding(num_speakers, hidden) if config.use_speaker else None
        width = 0
        self.rtgraph = None
        if config.use_rtgraph:
            self.rtgraph = RelationalTemporalGraph(
                len(self.modalities),
                hidden,
                config.rtgraph.heads,
                has_past=config.wp != 0,
                has_future=config.wf != 0,
                has_self=config.rtgraph.self_loops,
            )
            width += len(self.modalities) * self.rtgraph.out_channels
        self.pcm = None
        if config.use_pcm:
            if len(self.modalities) < 2:
                raise ConfigError(
                    f"P-CM needs at least two modalities, the data has {self.modalities}; set model.use_pcm=false"
                )
            memory_width = hidden * (len(self.modalities) - 1)
            if config.pcm.memory_layers and memory_width % config.pcm.memory_heads:
                raise ConfigError(
                    f"the P-CM memory width hidden x (modalities - 1) = {memory_width} is not divisible by "
                    f"model.pcm.memory_heads {config.pcm.memory_heads}"
                )
            self.pcm = PairwiseCrossModal(
                self.modalities, hidden, config.pcm.heads, config.pcm.layers, config.pcm.memory_heads, config.pcm.memory_layers
            )
            width += self.pcm.out_channels
        if width == 0:  # neither branch: the encoded modalities go straight to the classifier
            width = len(self.modalities) * hidden
        self.classifier = EmotionClassifier(width, hidden, num_classes, config.dropout)

    def forward(self, batch: BatchLike) -> ModelOutput:
        features = select_features(batch, self.modalities)
        speaker = self.speaker_embedding(batch.speakers) if self.speaker_embedding is not None else 0.0
        encoded = [self.encoders[m](x, batch) + speaker for m, x in zip(self.modalities, features)]
        num_utterances = features[0].shape[0]
        parts: list[Tensor] = []
        if self.rtgraph is not None:
            graph = build_edges(
                batch.dialog_index,
                batch.position,
                batch.lengths,
                len(self.modalities),
                self.config.wp,
                self.config.wf,
                self_loops=self.config.rtgraph.self_loops,
            )
            # Nodes are modality-major (node(m, u) = m N + u): stack, convolve, unstack per utterance.
            nodes = self.rtgraph(torch.cat(encoded, dim=0), graph)
            parts.append(nodes.view(len(self.modalities), num_utterances, -1).transpose(0, 1).reshape(num_utterances, -1))
        if self.pcm is not None:
            sequences = {
                m: to_padded(h, batch.dialog_index, batch.position, batch.lengths) for m, h in zip(self.modalities, encoded)
            }
            key_padding = padding_mask(batch.lengths, int(batch.lengths.max()))
            crossed = self.pcm(sequences, key_padding, self.config.causal)
            parts.append(from_padded(crossed, batch.dialog_index, batch.position))
        representations = torch.cat(parts, dim=-1) if parts else torch.cat(encoded, dim=-1)
        return ModelOutput(logits=self.classifier(representations), representations=representations)


@register_model("corect", CORECTConfig)
def build_corect(config: CORECTConfig, dims: dict[str, int], num_speakers: int, num_classes: int) -> nn.Module:
    return CORECT(config, dims, num_speakers, num_classes)
