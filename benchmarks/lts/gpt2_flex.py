"""GPT-2 with per-layer widths and adaptive input/output, as trained by LiteTransformerSearch.

This rebuilds Archai's `HfGPT2Flex` from its `model_config.yaml`: GPT-2 decoder blocks whose
number of heads and feed-forward width may differ per layer, an adaptive input embedding
(vocabulary split into frequency clusters, rarer clusters embedded in fewer dimensions and
projected up to `d_model`) and the matching projected adaptive softmax, with weights and
projections tied between the two as the config says.

The adaptive embedding and softmax are `lpzero.benchmarks.lts.adaptive`'s, shared with the
Transformer-XL family. The decoder blocks are transformers' own `GPT2Block`s, one `GPT2Config` per layer. They run
`benchmarks.attention`'s eager attention, which sends the attention probabilities through a
module (`attn.attn_dropout`) so a forward hook can observe them, in any dtype.

Parameter counts follow Archai's own convention (see `count_params`), so they can be checked
against the `params_summary.yaml` the benchmark ships.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import GPT2Config
from transformers.models.gpt2.modeling_gpt2 import GPT2Attention, GPT2Block, GPT2MLP
from transformers.pytorch_utils import Conv1D

from ..attention import gpt2_block_sites, register_hookable_attention
from ..base import ConfigError, ZCSites
from .adaptive import (AdaptiveEmbedding, AdaptiveLogSoftmax, AdaptiveVocabulary, clean_cutoffs, init_adaptive,
                       integer, next_token_loss, per_layer, seeded_model)

# Archai's defaults for the keys a model_config.yaml may leave out.
_DEFAULTS: dict[str, Any] = {
    "tie_weight": True,
    "tie_projs": None,  # None: derived from `adaptive`, as Archai does
    "adaptive": True,
    "tgt_len": 192,
    "dropout": 0.1,
    "dropatt": 0.0,
    "weight_init_std": 0.02,
    "proj_init_std": 0.01,
}
_REQUIRED = ("n_token", "n_layer", "d_model", "n_head", "d_inner", "d_embed", "div_val", "cutoffs")


@dataclass(frozen=True)
class FlexConfig(AdaptiveVocabulary):
    """The architecture fields of a `model_config.yaml`, validated, per-layer lists expanded."""

    n_token: int
    n_layer: int
    d_model: int
    n_head: tuple[int, ...]
    d_inner: tuple[int, ...]
    d_embed: int
    div_val: int
    cutoffs: tuple[int, ...]  # cleaned: ends at n_token
    tie_weight: bool
    tie_projs: tuple[bool, ...]  # one per cluster
    n_positions: int
    dropout: float
    dropatt: float
    weight_init_std: float
    proj_init_std: float

    @classmethod
    def from_dict(cls, raw: dict) -> "FlexConfig":
        """Parse an Archai model config; `ValueError` naming the offending key."""
        if not isinstance(raw, dict):
            raise ConfigError(f"expected a mapping of config keys, got {type(raw).__name__}")
        missing = [k for k in _REQUIRED if k not in raw]
        if missing:
            raise ConfigError(f"missing key(s) {', '.join(missing)}")
        cfg = {**_DEFAULTS, **raw}
        n_layer, d_model = integer(cfg, "n_layer"), integer(cfg, "d_model")
        if n_layer < 1 or d_model < 1:
            raise ConfigError(f"n_layer and d_model must be positive, got {n_layer}, {d_model}")
        n_head = per_layer(cfg["n_head"], n_layer, "n_head")
        d_inner = per_layer(cfg["d_inner"], n_layer, "d_inner")
        for i, h in enumerate(n_head):
            if d_model % h:
                raise ConfigError(f"layer {i}: d_model {d_model} is not divisible by n_head {h}")

        n_token = integer(cfg, "n_token")
        d_embed = integer(cfg, "d_embed")
        d_embed = d_model if d_embed == -1 else d_embed
        div_val = integer(cfg, "div_val")
        if div_val < 1:
            # div_val 0 is Archai's plain (non-adaptive) embedding; no benchmark uses it.
            raise ConfigError(f"div_val {div_val} is not supported (need >= 1)")
        cutoffs = clean_cutoffs(cfg["cutoffs"], n_token)
        if div_val > 1 and d_embed // div_val ** (len(cutoffs) - 1) < 1:
            raise ConfigError(
                f"d_embed {d_embed} too small for div_val {div_val} and {len(cutoffs)} clusters"
            )

        tie_projs = cfg["tie_projs"]
        if not tie_projs:
            # Archai: the head cluster keeps its own projection unless the softmax is not adaptive.
            tie_projs = [not cfg["adaptive"]] + [True] * (len(cutoffs) - 1)
        if len(tie_projs) < len(cutoffs):
            raise ConfigError(f"tie_projs has {len(tie_projs)} entries for {len(cutoffs)} clusters")

        return cls(
            n_token=n_token,
            n_layer=n_layer,
            d_model=d_model,
            n_head=n_head,
            d_inner=d_inner,
            d_embed=d_embed,
            div_val=div_val,
            cutoffs=tuple(cutoffs),
            tie_weight=bool(cfg["tie_weight"]),
            tie_projs=tuple(bool(t) for t in tie_projs[: len(cutoffs)]),
            n_positions=integer(cfg, "tgt_len", minimum=1),
            dropout=float(cfg["dropout"]),
            dropatt=float(cfg["dropatt"]),
            weight_init_std=float(cfg["weight_init_std"]),
            proj_init_std=float(cfg["proj_init_std"]),
        )

    def layer_config(self, i: int) -> GPT2Config:
        """The stock GPT2Config of block `i`: its own n_head and d_inner."""
        return GPT2Config(
            vocab_size=self.n_token,
            n_positions=self.n_positions,
            n_embd=self.d_model,
            n_layer=self.n_layer,
            n_head=self.n_head[i],
            n_inner=self.d_inner[i],
            resid_pdrop=self.dropout,
            attn_pdrop=self.dropatt,
            embd_pdrop=0.0,
            initializer_range=self.weight_init_std,
            # Probabilities pass through the `attn_dropout` module, where a hook can see them.
            attn_implementation=register_hookable_attention(),
        )


class GPT2Flex(nn.Module):
    """GPT-2 decoder with per-layer n_head / d_inner and adaptive embedding + softmax.

    Modules: `wte` (AdaptiveEmbedding), `wpe` (learned positions), `h` (GPT2Blocks),
    `ln_f`, `lm_head` (AdaptiveLogSoftmax). `forward` returns the final hidden states;
    `loss` the mean next-token cross-entropy.
    """

    def __init__(self, cfg: FlexConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = AdaptiveEmbedding(cfg)
        self.wpe = nn.Embedding(cfg.n_positions, cfg.d_model)
        # Archai's embedding dropout is 0, so there is no dropout module here.
        self.h = nn.ModuleList(GPT2Block(cfg.layer_config(i), layer_idx=i) for i in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model, eps=self.h[0].ln_1.eps)
        self.lm_head = AdaptiveLogSoftmax(cfg, self.wte)

    @torch.no_grad()
    def init_weights(self) -> None:
        """Archai's initialisation, drawn from the global RNG (seed it, or use `build_gpt2_flex`).

        Normal(0, weight_init_std) for embeddings, linear weights and the softmax's own
        weights; Normal(0, proj_init_std) for projections; residual output projections
        (c_proj) scaled down by sqrt(2 * n_layer) as in GPT-2; biases 0, LayerNorms 1/0.
        """
        std, proj_std = self.cfg.weight_init_std, self.cfg.proj_init_std
        for name, module in self.named_modules():
            if isinstance(module, Conv1D):
                scale = math.sqrt(2 * self.cfg.n_layer) if name.endswith("c_proj") else 1.0
                module.weight.normal_(0.0, std / scale)
                module.bias.zero_()
            elif isinstance(module, nn.Embedding):
                module.weight.normal_(0.0, std)
            elif isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
        init_adaptive(self.wte, self.lm_head, lambda w: w.normal_(0.0, std), proj_std, self.cfg.tie_weight)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[B, T] token ids -> [B, T, d_model] final hidden states."""
        seq_len = input_ids.shape[1]
        if seq_len > self.cfg.n_positions:
            raise ConfigError(
                f"sequence length {seq_len} exceeds the model's {self.cfg.n_positions} positions"
            )
        positions = torch.arange(seq_len, device=input_ids.device)
        hidden = self.wte(input_ids) + self.wpe(positions)
        # Additive causal mask, broadcast over batch and heads.
        blocked = torch.ones(seq_len, seq_len, dtype=torch.bool, device=hidden.device).triu(1)
        mask = torch.zeros(seq_len, seq_len, dtype=hidden.dtype, device=hidden.device)
        mask = mask.masked_fill(blocked, torch.finfo(hidden.dtype).min)[None, None]
        for block in self.h:
            out = block(hidden, attention_mask=mask)
            # transformers < 5 returns a tuple from GPT2Block, >= 5 the hidden states.
            hidden = out[0] if isinstance(out, tuple) else out
        return self.ln_f(hidden)

    def loss(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of predicting token t+1 from tokens <= t, over the whole batch."""
        return next_token_loss(self, self.lm_head, input_ids)


def build_gpt2_flex(config: dict | FlexConfig, seed: int, device: str | torch.device = "cpu") -> GPT2Flex:
    """A `GPT2Flex` with weights drawn from `seed`, in eval mode (`adaptive.seeded_model`)."""
    cfg = config if isinstance(config, FlexConfig) else FlexConfig.from_dict(config)
    return seeded_model(lambda: GPT2Flex(cfg), seed, device)


def count_params(model: GPT2Flex) -> dict[str, int]:
    """Parameter counts under Archai's keys, found by walking the model's modules.

    - AdaEmb: the adaptive input embedding plus the position embedding;
    - Attn / FFN: all parameters of the blocks' attention / MLP modules (weights and biases);
    - nonembedding: Attn + FFN + every LayerNorm (both per block and the final ln_f);
    - total: every distinct parameter, so tied weights count once and the softmax's own
      parameters (cluster weights, biases, untied projections) appear only here.
    Works on a model built on the meta device.
    """

    def size(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    def size_of(kind: type) -> int:
        return sum(size(m) for m in model.modules() if isinstance(m, kind))

    attn, ffn = size_of(GPT2Attention), size_of(GPT2MLP)
    return {
        "AdaEmb": size(model.wte) + size(model.wpe),
        "Attn": attn,
        "FFN": ffn,
        "nonembedding": attn + ffn + size_of(nn.LayerNorm),
        "total": size(model),
    }


def count_gpt2_flex_params(config: dict | FlexConfig) -> dict[str, int]:
    """`count_params` of the model `config` describes, built on the meta device (no memory, fast)."""
    cfg = config if isinstance(config, FlexConfig) else FlexConfig.from_dict(config)
    with torch.device("meta"):
        return count_params(GPT2Flex(cfg))


def gpt2_flex_sites(model: GPT2Flex) -> ZCSites:
    """Where the proxy inputs live in a `GPT2Flex`; B = batch, T = sequence length.

    For block i (`model.h[i]`, H_i = n_head[i] heads, F_i = d_inner[i], D = d_model):

    - embedding: `model.wte`, the adaptive input embedding; its output [B, T, D] (scaled
      token embeddings, before the position embedding is added) is what J differentiates.
    - activations: `h[i].mlp.act` (GELU), output [B, T, F_i].
    - heads: `h[i].attn.c_proj`, where="input": the H_i head outputs concatenated,
      [B, T, D] (head j in columns j*D/H_i to (j+1)*D/H_i).
    - softmax: `h[i].attn.attn_dropout`, where="input": the attention probabilities
      [B, H_i, T, T], causal (zero above the diagonal), rows summing to 1. The input, not
      the output, so attention dropout in train mode would not alter them.
    - weights: `h.<i>.attn.c_attn` [D, 3D], `h.<i>.attn.c_proj` [D, D],
      `h.<i>.mlp.c_fc` [D, F_i], `h.<i>.mlp.c_proj` [F_i, D]. These are transformers'
      Conv1D weights, stored (in_features, out_features), i.e. transposed w.r.t. nn.Linear.
    """
    return ZCSites(model.wte, *gpt2_block_sites(model.h), position_embedding=model.wpe.weight)
