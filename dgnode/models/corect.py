"""CORECT: Conversation understanding using RElational Temporal graph neural networks with
auxiliary Cross-modality inTeraction (Nguyen et al., EMNLP 2023), in the layout of this package.

For a batch of dialogues with ``N`` utterances and modalities ``m = 1..M``:

1. per-modality encoders ``e_m: (N, D_m) -> (N, d)``: ``linear`` (CORECT's audio/visual
   encoder, ``ReLU(W_2 ReLU(W_1 x))``, context-free), ``transformer`` (CORECT's text encoder:
   self-attention over the dialogue at the input width ``D_m``, then a projection to ``d``,
   :class:`~dgnode.models.dialogue_transformer.DialogueTransformer`; causally masked in causal
   mode) or ``gru`` (a GRU over the dialogue, bidirectional; forward-only in causal mode), plus
   the speaker embedding: ``x_m^i = e_m(u_m)^i + S_{s_i}``;
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

**Against the released code** (leson502/CORECT_EMNLP2023): with ``rtgraph.norm: batch`` and the
``transformer`` text encoder this is the release's network: copying a release model's weights
into it gives the same log-probabilities (within 5e-7) on unpadded dialogues, once the window is
translated (below). The differences, all deliberate:

* **Window direction.** The release lists an edge ``(j, i)`` for every ``i`` in the window
  ``[j - wp, j + wf)`` of utterance ``j``, and PyG sends messages from ``edge_index[0]`` to
  ``edge_index[1]``: node ``i`` *receives* from ``j`` in ``[i - wf + 1, i + wp]``, so its ``wp``
  counts future utterances and its ``wf = 0`` is not causal (it still receives from the next
  ``wp``). Here a node receives from ``[i - wp, i + wf]`` (inclusive), so ``wf = 0`` is causal.
  The release's ``(wp, wf)`` is this model's ``(wf - 1, wp)``: its ``wp 11, wf 5`` is ``wp 4,
  wf 11`` here. The configs keep this model's meaning (``wp 11, wf 5``: eleven utterances of
  past, five of future); the swapped window measured no different on real IEMOCAP text.
* **Padding** is masked in every attention (text transformer, P-CM); the release attends to
  padded positions (zero features plus the speaker-0 embedding), so its outputs for a dialogue
  depend on the longest dialogue in the batch.
* **Speakers** are indexed by first appearance in the dialogue (:mod:`dgnode.features.dataset`);
  the release indexes IEMOCAP's speakers by gender (M 0, F 1).
* ``rtgraph.norm: layer`` (LayerNorm per node, also in training) is available for exact
  causality and batch independence in training; the release's BatchNorm has both in
  evaluation only.
* The release's ``modalities`` unpacking swaps the text and audio encoder outputs (its encoder
  returns ``(t, a, v)``, read as ``(a, t, v)``); node order and P-CM pairs are symmetric in the
  modalities, so this only renames its modalities; here each encoder feeds its own modality.
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
from dgnode.models.corect_layers import GraphNorm, PairwiseCrossModal, RelationalTemporalGraph, padding_mask
from dgnode.models.dialogue_transformer import DialogueTransformer, default_heads
from dgnode.models.recurrence import ContextEncoder
from dgnode.models.registry import register_model

EncoderKind = Literal["linear", "gru", "transformer"]
ENCODER_KINDS = ("linear", "gru", "transformer")


@dataclass
class RTGraphConfig:
    """RT-GRAPH settings (:class:`~dgnode.models.corect_layers.RelationalTemporalGraph`).

    Attributes:
        heads: heads of the graph transformer (output heads x hidden per node)
        self_loops: a self edge per node as its own relation (CORECT's temporal type 0)
        norm: batch (the release: BatchNorm after the graph transformer; per node in evaluation
            only) or layer (LayerNorm before and after it, per node in training too)
    """

    heads: int = 7
    self_loops: bool = True
    norm: GraphNorm = "batch"

    def __post_init__(self) -> None:
        if self.heads < 1:
            raise ValueError(f"rtgraph.heads must be >= 1, got {self.heads}")


@dataclass
class PCMConfig:
    """P-CM settings (:class:`~dgnode.models.corect_layers.PairwiseCrossModal`; inputs scaled by
    sqrt(width) as in the release).

    Attributes:
        heads: heads of each pairwise cross-modal transformer
        layers: layers of each pairwise cross-modal transformer
        memory_heads: heads of each modality's self-attention memory
        memory_layers: layers of each modality's self-attention memory (0: none)
    """

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
    """CORECT hyper-parameters (defaults: the released IEMOCAP script, ``run_train.sh``, and its
    ``train.py`` defaults: hidden 100, dropout 0.5, ``wp`` 11, ``wf`` 5 (see the module docstring
    for the window direction), a 2-layer transformer text encoder at the input width (heads by
    the release's rule, feed-forward 2048), linear audio/vision encoders, 7 graph-transformer
    heads with BatchNorm, 2 cross-modal layers with 2 heads, 3 memory layers with 2 heads).

    Attributes:
        wp, wf: past / future window of the temporal edges (-1: whole dialogue; ``wf = 0``:
            causal mode, which also makes the sequence encoders and every attention causal).
        text_encoder, audio_encoder, vision_encoder: ``linear``, ``gru`` or ``transformer``.
        encoder_layers: layers of the ``gru`` / ``transformer`` encoders.
        encoder_heads: heads of the ``transformer`` encoders, which attend at the input width
            (null: the release's rule, the smallest of 7..14 dividing that width, else 1).
        encoder_feedforward: feed-forward width of the ``transformer`` encoders.
        use_rtgraph, use_pcm, use_speaker: ablation switches.
        rtgraph, pcm: the two branches' settings.
    """

    name: str = "corect"
    hidden: int = 100
    dropout: float = 0.5
    wp: int = 11
    wf: int = 5
    text_encoder: EncoderKind = "transformer"
    audio_encoder: EncoderKind = "linear"
    vision_encoder: EncoderKind = "linear"
    encoder_layers: int = 2
    encoder_heads: int | None = None
    encoder_feedforward: int = 2048
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
        if self.encoder_layers < 1 or (self.encoder_heads is not None and self.encoder_heads < 1) or self.encoder_feedforward < 1:
            raise ValueError(f"encoder_layers, encoder_heads and encoder_feedforward must be >= 1, got "
                             f"{self.encoder_layers}, {self.encoder_heads}, {self.encoder_feedforward}")
        if not self.causal and "gru" in kinds.values() and self.hidden % 2:
            raise ValueError(f"hidden must be even: a bidirectional GRU encoder uses hidden/2 units per direction, got {self.hidden}")
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

    def __init__(self, kind: str, in_dim: int, hidden: int, causal: bool, config: CORECTConfig) -> None:
        super().__init__()
        self.kind = kind
        if kind == "linear":
            self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        elif kind == "gru":
            self.net = ContextEncoder(in_dim, hidden, causal=causal, num_layers=config.encoder_layers)
        elif kind == "transformer":
            heads = default_heads(in_dim) if config.encoder_heads is None else config.encoder_heads
            if in_dim % heads:
                raise ConfigError(f"model.encoder_heads {heads} does not divide the input width {in_dim} the "
                                  "transformer encoder attends at")
            self.net = DialogueTransformer(in_dim, hidden, config.encoder_layers, heads, config.encoder_feedforward,
                                           config.dropout, causal)
        else:
            raise ValueError(f"unknown encoder kind {kind!r}; expected one of {', '.join(ENCODER_KINDS)}")

    def forward(self, x: Tensor, batch: BatchLike) -> Tensor:
        if self.kind == "linear":
            return self.net(x)
        return self.net(x, batch.dialog_index, batch.position, batch.lengths)


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
            {m: UnimodalEncoder(kinds[m], dim, hidden, config.causal, config) for m, dim in dims.items()}
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
                norm=config.rtgraph.norm,
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
