"""Transformer-XL with per-layer widths and adaptive input/output, as trained by LiteTransformerSearch.

This rebuilds Archai's (NVIDIA's) `MemTransformerLM` with relative positional attention
(`attn_type` 0) from its `model_config.yaml`: post-LayerNorm decoder layers whose number of
heads and feed-forward width may differ per layer, the adaptive input embedding and projected
adaptive softmax the GPT-2 flex models share (`lpzero.benchmarks.lts.adaptive`), and a word-level
vocabulary.

Each layer's attention ("relative partial learnable", Dai et al. 2019) scores query i against key j as

    (q_i + u) . k_j  +  (q_i + v) . R_{i-j},      scaled by 1 / sqrt(d_head),

where R_d is `r_net` applied to the sinusoidal embedding of the distance d, and u, v are the
layer's learned biases `r_w_bias`, `r_r_bias` [n_head, d_head]. A model scores one segment with
no memory carried in, so the distances are those inside the segment and each token attends to
itself and earlier tokens only.

Parameter counts follow the code that wrote the benchmark's `params_summary.yaml` (`count_params`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..base import ConfigError, Site, WeightSite, ZCSites
from .adaptive import (AdaptiveEmbedding, AdaptiveLogSoftmax, AdaptiveVocabulary, clean_cutoffs, init_adaptive,
                       integer, next_token_loss, per_layer, seeded_model)

# Defaults of Archai's MemTransformerLM for the keys a model_config.yaml may leave out, except
# `adaptive` (False there), which the LTS runs all set. tie_projs None: derived from `adaptive`.
_DEFAULTS: dict[str, Any] = {
    "d_head": -1, "tie_weight": True, "tie_projs": None, "adaptive": True, "attn_type": 0,
    "pre_lnorm": False, "same_length": False, "clamp_len": -1, "tgt_len": 192, "mem_len": 192,
    "dropout": 0.1, "dropatt": 0.0, "weight_init_type": "normal", "weight_init_range": 0.1,
    "weight_init_std": 0.02, "proj_init_std": 0.01,
}
_REQUIRED = ("n_token", "n_layer", "d_model", "n_head", "d_inner", "d_embed", "div_val", "cutoffs")
# Options of Archai's model that these benchmarks never switch on: building without them would
# silently give another model, so a config that sets them is refused.
_UNSUPPORTED = {"sample_softmax": lambda v: isinstance(v, (int, float)) and v > 0, "primer_conv": bool,
                "primer_square": bool}


def is_transxl_config(raw: dict) -> bool:
    """Whether a raw `model_config.yaml` describes a Transformer-XL rather than a GPT-2 flex model.

    The architecture keys of the two families are the same (GPT-2 configs even carry
    `attn_type: 0` and `mem_len`), so the decision rests on what the training run recorded:
    its `model_type` when there is one ("mem_transformer"), else its vocabulary: Archai's
    Transformer-XL runs train on a word-level vocabulary and write `vocab: word` beside the
    architecture, while the GPT-2 runs use the byte-level BPE and record no word vocabulary.
    A config with neither key (the GPT-2 directory's architecture-only configs) is GPT-2.
    """
    if not isinstance(raw, dict):
        return False
    if "model_type" in raw:
        return raw["model_type"] == "mem_transformer"
    return raw.get("vocab") == "word"


@dataclass(frozen=True)
class TransXLConfig(AdaptiveVocabulary):
    """The architecture fields of a Transformer-XL `model_config.yaml`, validated, per-layer lists expanded."""

    n_token: int
    n_layer: int
    d_model: int
    n_head: tuple[int, ...]
    d_head: tuple[int, ...]
    d_inner: tuple[int, ...]
    d_embed: int
    div_val: int
    cutoffs: tuple[int, ...]  # cleaned: ends at n_token
    tie_weight: bool
    tie_projs: tuple[bool, ...]  # one per cluster
    tgt_len: int
    mem_len: int
    pre_lnorm: bool
    same_length: bool
    clamp_len: int
    dropout: float
    dropatt: float
    weight_init_type: str
    weight_init_range: float
    weight_init_std: float
    proj_init_std: float

    @classmethod
    def from_dict(cls, raw: dict) -> "TransXLConfig":
        """Parse an Archai mem_transformer config; `ConfigError` naming the offending key."""
        if not isinstance(raw, dict):
            raise ConfigError(f"expected a mapping of config keys, got {type(raw).__name__}")
        missing = [k for k in _REQUIRED if k not in raw]
        if missing:
            raise ConfigError(f"missing key(s) {', '.join(missing)}")
        cfg = {**_DEFAULTS, **raw}
        if cfg["attn_type"] != 0:
            raise ConfigError(f"attn_type {cfg['attn_type']!r} is not supported (only 0, relative attention)")
        for key, is_on in _UNSUPPORTED.items():
            if key in cfg and is_on(cfg[key]):
                raise ConfigError(f"{key} {cfg[key]!r} is not supported")

        n_layer, d_model = integer(cfg, "n_layer", 1), integer(cfg, "d_model", 2)
        if d_model % 2:
            raise ConfigError(f"d_model must be even (sinusoidal positions), got {d_model}")
        n_head = per_layer(cfg["n_head"], n_layer, "n_head")
        d_inner = per_layer(cfg["d_inner"], n_layer, "d_inner")
        d_head = _head_dims(cfg["d_head"], n_head, d_model)

        n_token = integer(cfg, "n_token", 1)
        d_embed = integer(cfg, "d_embed")
        d_embed = d_model if d_embed < 0 else d_embed
        if d_embed < 1:
            raise ConfigError(f"d_embed must be positive (or -1: d_model), got {d_embed}")
        div_val = integer(cfg, "div_val")
        if div_val < 1:
            # div_val 0 is Archai's plain (non-adaptive) embedding; no benchmark uses it.
            raise ConfigError(f"div_val {div_val} is not supported (need >= 1)")
        if not isinstance(cfg["cutoffs"], (list, tuple)) or not all(
                isinstance(c, int) and not isinstance(c, bool) for c in cfg["cutoffs"]):
            raise ConfigError(f"cutoffs must be a list of integers, got {cfg['cutoffs']!r}")
        cutoffs = clean_cutoffs(list(cfg["cutoffs"]), n_token)
        if div_val > 1 and d_embed // div_val ** (len(cutoffs) - 1) < 1:
            raise ConfigError(f"d_embed {d_embed} too small for div_val {div_val} and {len(cutoffs)} clusters")
        tie_projs = _tie_projs(cfg["tie_projs"], cfg["adaptive"], len(cutoffs))

        init_type = cfg["weight_init_type"]
        if init_type not in ("normal", "uniform"):
            raise ConfigError(f"weight_init_type must be 'normal' or 'uniform', got {init_type!r}")
        return cls(
            n_token=n_token, n_layer=n_layer, d_model=d_model,
            n_head=n_head, d_head=d_head, d_inner=d_inner,
            d_embed=d_embed, div_val=div_val, cutoffs=tuple(cutoffs),
            tie_weight=bool(cfg["tie_weight"]), tie_projs=tie_projs,
            tgt_len=integer(cfg, "tgt_len", 1), mem_len=integer(cfg, "mem_len", 0),
            pre_lnorm=bool(cfg["pre_lnorm"]), same_length=bool(cfg["same_length"]),
            clamp_len=integer(cfg, "clamp_len"),
            dropout=_number(cfg, "dropout"), dropatt=_number(cfg, "dropatt"),
            weight_init_type=init_type, weight_init_range=_number(cfg, "weight_init_range"),
            weight_init_std=_number(cfg, "weight_init_std"), proj_init_std=_number(cfg, "proj_init_std"),
        )

    @property
    def n_positions(self) -> int:
        """The segment length the model was trained on (`tgt_len`); the GPT-2 builder's name for it."""
        return self.tgt_len


def _number(cfg: dict, key: str) -> float:
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{key} must be a non-negative number, got {value!r}")
    return float(value)


def _head_dims(d_head: Any, n_head: tuple[int, ...], d_model: int) -> tuple[int, ...]:
    """Per-layer head width: d_model // n_head of the layer when `d_head` is -1 (Archai's rule)."""
    if isinstance(d_head, int) and d_head < 0:
        dims = tuple(d_model // h for h in n_head)
        if min(dims) < 1:
            raise ConfigError(f"n_head {list(n_head)} exceeds d_model {d_model} (d_head would be 0)")
        return dims
    return per_layer(d_head, len(n_head), "d_head")


def _tie_projs(tie_projs: Any, adaptive: bool, n_clusters: int) -> tuple[bool, ...]:
    if not tie_projs:
        # Archai: the head cluster keeps its own projection unless the softmax is not adaptive.
        tie_projs = [not adaptive] + [True] * (n_clusters - 1)
    if not isinstance(tie_projs, (list, tuple)) or len(tie_projs) < n_clusters:
        raise ConfigError(f"tie_projs must list one flag per cluster ({n_clusters}), got {tie_projs!r}")
    return tuple(bool(t) for t in tie_projs[:n_clusters])


def sinusoid_embedding(distances: torch.Tensor, d_model: int) -> torch.Tensor:
    """[K] distances -> [K, d_model]: sines then cosines at Transformer-XL's frequencies."""
    inv_freq = 1.0 / 10000 ** (torch.arange(0, d_model, 2, dtype=distances.dtype, device=distances.device) / d_model)
    angles = distances[:, None] * inv_freq[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class RelPartialLearnableAttention(nn.Module):
    """Multi-head self-attention with Transformer-XL's relative positions, LayerNorm and residual.

    Modules: `qkv_net` (queries, keys, values; no bias), `r_net` (projects the distance
    embeddings to per-head keys), `o_net` (merges the heads), `dropatt` (its forward input is
    the attention probabilities), `layer_norm`. The learned biases u, v belong to the layer
    (`DecoderLayer.r_w_bias`, `r_r_bias`), as in Archai they belong to the model, not here.
    """

    def __init__(self, d_model: int, n_head: int, d_head: int, dropout: float, dropatt: float,
                 pre_lnorm: bool) -> None:
        super().__init__()
        self.n_head, self.d_head = n_head, d_head
        self.scale = 1.0 / math.sqrt(d_head)
        self.pre_lnorm = pre_lnorm
        self.qkv_net = nn.Linear(d_model, 3 * n_head * d_head, bias=False)
        self.r_net = nn.Linear(d_model, n_head * d_head, bias=False)
        self.o_net = nn.Linear(n_head * d_head, d_model, bias=False)
        self.dropatt = nn.Dropout(dropatt)
        self.drop = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(d_model)

    def forward(self, hidden: torch.Tensor, pos_emb: torch.Tensor, distance: torch.Tensor,
                blocked: torch.Tensor, r_w_bias: torch.Tensor, r_r_bias: torch.Tensor) -> torch.Tensor:
        """hidden [B, T, D]; pos_emb [K, D], row d embedding distance d; distance [T, T] the row
        of pos_emb for query i and key j; blocked [T, T] True where i may not attend to j."""
        batch, seq_len, _ = hidden.shape
        x = self.layer_norm(hidden) if self.pre_lnorm else hidden
        q, k, v = self.qkv_net(x).view(batch, seq_len, 3, self.n_head, self.d_head).unbind(2)
        r = self.r_net(pos_emb).view(-1, self.n_head, self.d_head)

        content = torch.einsum("bihd,bjhd->bhij", q + r_w_bias, k)
        # Score every query against every distance once, then pick each (i, j)'s distance:
        # the same numbers as Transformer-XL's "relative shift", written as an index.
        by_distance = torch.einsum("bihd,khd->bhik", q + r_r_bias, r)
        position = by_distance.gather(3, distance.expand(batch, self.n_head, seq_len, seq_len))
        scores = ((content + position) * self.scale).masked_fill(blocked, float("-inf"))
        probs = self.dropatt(torch.softmax(scores, dim=-1))

        heads = torch.einsum("bhij,bjhd->bihd", probs, v).reshape(batch, seq_len, self.n_head * self.d_head)
        out = self.drop(self.o_net(heads))
        return hidden + out if self.pre_lnorm else self.layer_norm(hidden + out)


class PositionwiseFF(nn.Module):
    """Feed-forward block: `CoreNet` = Linear, ReLU, Dropout, Linear, Dropout; LayerNorm and residual.

    The Sequential's indices are Archai's (weights `CoreNet.0`, `CoreNet.3`); the ReLU is a
    module (`CoreNet.1`) so a hook can read the activations.
    """

    def __init__(self, d_model: int, d_inner: int, dropout: float, pre_lnorm: bool) -> None:
        super().__init__()
        self.pre_lnorm = pre_lnorm
        self.CoreNet = nn.Sequential(
            nn.Linear(d_model, d_inner), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(d_inner, d_model), nn.Dropout(dropout),
        )
        self.layer_norm = nn.LayerNorm(d_model)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.pre_lnorm:
            return hidden + self.CoreNet(self.layer_norm(hidden))
        return self.layer_norm(hidden + self.CoreNet(hidden))


class DecoderLayer(nn.Module):
    """One Transformer-XL layer: `dec_attn`, then `pos_ff`, with the layer's own u, v biases."""

    def __init__(self, cfg: TransXLConfig, i: int) -> None:
        super().__init__()
        n_head, d_head = cfg.n_head[i], cfg.d_head[i]
        self.dec_attn = RelPartialLearnableAttention(cfg.d_model, n_head, d_head, cfg.dropout,
                                                     cfg.dropatt, cfg.pre_lnorm)
        self.pos_ff = PositionwiseFF(cfg.d_model, cfg.d_inner[i], cfg.dropout, cfg.pre_lnorm)
        self.r_w_bias = nn.Parameter(torch.empty(n_head, d_head))
        self.r_r_bias = nn.Parameter(torch.empty(n_head, d_head))

    def forward(self, hidden: torch.Tensor, pos_emb: torch.Tensor, distance: torch.Tensor,
                blocked: torch.Tensor) -> torch.Tensor:
        hidden = self.dec_attn(hidden, pos_emb, distance, blocked, self.r_w_bias, self.r_r_bias)
        return self.pos_ff(hidden)


class TransXL(nn.Module):
    """Transformer-XL (relative attention) with per-layer n_head / d_inner and adaptive embedding + softmax.

    Modules: `word_emb` (AdaptiveEmbedding), `layers` (DecoderLayers), `crit`
    (AdaptiveLogSoftmax, tied to `word_emb` as the config says). There is no learned position
    table: distances are embedded with fixed sinusoids. `forward` returns the final hidden
    states of one segment; `loss` the mean next-token cross-entropy.
    """

    def __init__(self, cfg: TransXLConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.word_emb = AdaptiveEmbedding(cfg)
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i) for i in range(cfg.n_layer))
        self.crit = AdaptiveLogSoftmax(cfg, self.word_emb)

    @torch.no_grad()
    def init_weights(self) -> None:
        """Archai's initialisation, drawn from the global RNG (seed it, or use `build_transxl`).

        `weight_init_type` draws (Normal(0, weight_init_std), or Uniform(+-weight_init_range))
        for linear weights, embedding tables, the u/v biases, the softmax's cluster weights and
        untied output weights; Normal(0, proj_init_std) for every projection; LayerNorm weights
        Normal(1, weight_init_std) (Archai's choice, not 1); all biases 0.
        """
        for module in self.modules():
            if isinstance(module, nn.Linear):
                self._draw(module.weight)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.Embedding):
                self._draw(module.weight)
            elif isinstance(module, nn.LayerNorm):
                module.weight.normal_(1.0, self.cfg.weight_init_std)
                module.bias.zero_()
        for layer in self.layers:
            self._draw(layer.r_w_bias)
            self._draw(layer.r_r_bias)
        init_adaptive(self.word_emb, self.crit, self._draw, self.cfg.proj_init_std, self.cfg.tie_weight)

    def _draw(self, weight: torch.Tensor) -> None:
        if self.cfg.weight_init_type == "uniform":
            weight.uniform_(-self.cfg.weight_init_range, self.cfg.weight_init_range)
        else:
            weight.normal_(0.0, self.cfg.weight_init_std)

    def _relative_positions(self, seq_len: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pos_emb [T, D], distance [T, T], blocked [T, T]) of one segment with no memory."""
        steps = torch.arange(seq_len, device=like.device)
        offset = steps[:, None] - steps[None, :]  # i - j
        blocked = offset < 0
        if self.cfg.same_length:
            # Archai's same_length: every query sees at most mem_len earlier tokens.
            blocked = blocked | (offset > self.cfg.mem_len)
        distances = steps.to(like.dtype)
        if self.cfg.clamp_len > 0:
            distances = distances.clamp(max=self.cfg.clamp_len)
        # Blocked pairs (j > i) read distance 0; their scores are masked anyway.
        return sinusoid_embedding(distances, self.cfg.d_model), offset.clamp(min=0), blocked

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[B, T] token ids -> [B, T, d_model] final hidden states (one segment, no memory)."""
        embedded = self.word_emb(input_ids)
        pos_emb, distance, blocked = self._relative_positions(input_ids.shape[1], embedded)
        hidden, pos_emb = self.drop(embedded), self.drop(pos_emb)
        for layer in self.layers:
            hidden = layer(hidden, pos_emb, distance, blocked)
        return self.drop(hidden)

    def loss(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of predicting token t+1 from tokens <= t, over the whole batch."""
        return next_token_loss(self, self.crit, input_ids)


def build_transxl(config: dict | TransXLConfig, seed: int, device: str | torch.device = "cpu") -> TransXL:
    """A `TransXL` with weights drawn from `seed`, in eval mode (`adaptive.seeded_model`)."""
    cfg = config if isinstance(config, TransXLConfig) else TransXLConfig.from_dict(config)
    return seeded_model(lambda: TransXL(cfg), seed, device)


def count_params(model: TransXL) -> dict[str, int]:
    """Parameter counts under the keys of the benchmark's params_summary.yaml.

    That file was written by Archai's `gather_results.py --analyze_params` from
    `MemTransformerLM.get_params()`, which sums the parameters of modules by class name:

    - AdaEmb: the adaptive input embedding (tables and projections);
    - Attn: each layer's attention module, i.e. qkv_net, r_net, o_net and the attention's
      LayerNorm (u/v biases are not in it: Archai keeps them on the model);
    - FFN: each layer's CoreNet, the two linear layers with their biases (not its LayerNorm);
    - nonembedding: Attn + FFN + every LayerNorm, so the attention's LayerNorm counts twice;
    - total: every distinct parameter (tied weights once), including u/v and the softmax's own.
    Where n_head * d_head = d_model (all 200 benchmark models) the u/v biases have exactly the
    attention LayerNorm's size, so Attn equals qkv + r + o + u + v, and nonembedding every
    decoder parameter. Works on a model built on the meta device.
    """

    def size(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    attn = sum(size(layer.dec_attn) for layer in model.layers)
    ffn = sum(size(layer.pos_ff.CoreNet) for layer in model.layers)
    norms = sum(size(m) for m in model.modules() if isinstance(m, nn.LayerNorm))
    return {
        "AdaEmb": size(model.word_emb),
        "Attn": attn,
        "FFN": ffn,
        "nonembedding": attn + ffn + norms,
        "total": size(model),
    }


def count_transxl_params(config: dict | TransXLConfig) -> dict[str, int]:
    """`count_params` of the model `config` describes, built on the meta device (no memory, fast)."""
    cfg = config if isinstance(config, TransXLConfig) else TransXLConfig.from_dict(config)
    with torch.device("meta"):
        return count_params(TransXL(cfg))


#: the weight matrices of one layer that W/G read, by module path inside the layer
WEIGHT_PARTS = ("dec_attn.qkv_net", "dec_attn.r_net", "dec_attn.o_net", "pos_ff.CoreNet.0", "pos_ff.CoreNet.3")


def transxl_sites(model: TransXL) -> ZCSites:
    """Where the proxy inputs live in a `TransXL`; B = batch, T = sequence length.

    For layer i (`model.layers[i]`, H_i heads of width d_i, F_i = d_inner[i], D = d_model):

    - embedding: `model.word_emb`; its output [B, T, D] (scaled adaptive embeddings) is what
      J differentiates.
    - activations: `layers.<i>.pos_ff.CoreNet.1` (ReLU), output [B, T, F_i].
    - heads: `layers.<i>.dec_attn.o_net`, where="input": the heads concatenated, [B, T, H_i * d_i].
    - softmax: `layers.<i>.dec_attn.dropatt`, where="input": the attention probabilities
      [B, H_i, T, T], causal, rows summing to 1 (the input, so dropout could not alter them).
    - weights: the nn.Linear weights ([out, in]) of `WEIGHT_PARTS`, named `layers.<i>.<part>`.
    - position_embedding: None (the positions are fixed sinusoids, not a learned table).
    """
    activations, heads, softmax, weights = [], [], [], []
    for i, layer in enumerate(model.layers):
        activations.append(Site(i, layer.pos_ff.CoreNet[1], "output", f"layers.{i}.pos_ff.CoreNet.1"))
        heads.append(Site(i, layer.dec_attn.o_net, "input", f"layers.{i}.dec_attn.o_net"))
        softmax.append(Site(i, layer.dec_attn.dropatt, "input", f"layers.{i}.dec_attn.dropatt"))
        for part in WEIGHT_PARTS:
            weights.append(WeightSite(i, f"layers.{i}.{part}", layer.get_submodule(part).weight))
    return ZCSites(model.word_emb, activations, heads, softmax, weights, position_embedding=None)
