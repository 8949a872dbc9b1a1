"""GPT-2 with per-layer widths and adaptive input/output, as trained by LiteTransformerSearch.

This rebuilds Archai's `HfGPT2Flex` from its `model_config.yaml`: GPT-2 decoder blocks whose
number of heads and feed-forward width may differ per layer, an adaptive input embedding
(vocabulary split into frequency clusters, rarer clusters embedded in fewer dimensions and
projected up to `d_model`) and the matching projected adaptive softmax, with weights and
projections tied between the two as the config says.

The decoder blocks are transformers' own `GPT2Block`s, one `GPT2Config` per layer. They run
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
import torch.nn.functional as F
from torch import nn
from transformers import GPT2Config
from transformers.models.gpt2.modeling_gpt2 import GPT2Attention, GPT2Block, GPT2MLP
from transformers.pytorch_utils import Conv1D

from ..attention import register_hookable_attention
from ..base import ConfigError

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


def clean_cutoffs(cutoffs: list[int] | None, n_token: int) -> list[int]:
    """Cluster boundaries trimmed to the vocabulary, always ending at `n_token`.

    Archai's configs list cutoffs for a larger vocabulary (e.g. [19997, 39997, 199997, 50264]);
    everything from the first entry >= n_token on is dropped and n_token closes the list,
    giving [19997, 39997, 50264] for GPT-2's 50,264 tokens.
    """
    kept: list[int] = []
    for c in cutoffs or []:
        if c >= n_token:
            break
        if c <= (kept[-1] if kept else 0):
            raise ConfigError(f"cutoffs must increase and be positive, got {cutoffs}")
        kept.append(int(c))
    return kept + [n_token]


@dataclass(frozen=True)
class FlexConfig:
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
        n_layer, d_model = _integer(cfg, "n_layer"), _integer(cfg, "d_model")
        if n_layer < 1 or d_model < 1:
            raise ConfigError(f"n_layer and d_model must be positive, got {n_layer}, {d_model}")
        n_head = _per_layer(cfg["n_head"], n_layer, "n_head")
        d_inner = _per_layer(cfg["d_inner"], n_layer, "d_inner")
        for i, h in enumerate(n_head):
            if d_model % h:
                raise ConfigError(f"layer {i}: d_model {d_model} is not divisible by n_head {h}")

        n_token = _integer(cfg, "n_token")
        d_embed = _integer(cfg, "d_embed")
        d_embed = d_model if d_embed == -1 else d_embed
        div_val = _integer(cfg, "div_val")
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
            n_positions=_integer(cfg, "tgt_len", minimum=1),
            dropout=float(cfg["dropout"]),
            dropatt=float(cfg["dropatt"]),
            weight_init_std=float(cfg["weight_init_std"]),
            proj_init_std=float(cfg["proj_init_std"]),
        )

    def cluster_bounds(self) -> list[tuple[int, int]]:
        """[lo, hi) token-id range of each vocabulary cluster (the first is the head)."""
        ends = [0, *self.cutoffs]
        return list(zip(ends[:-1], ends[1:]))

    def cluster_dim(self, i: int) -> int:
        """Embedding width of cluster `i` (every cluster has d_embed when div_val is 1)."""
        return self.d_embed // self.div_val**i

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


def _integer(cfg: dict, key: str, minimum: int | None = None) -> int:
    """cfg[key] as an int; ConfigError for a fraction (n_layer: 2.7), a string or a bool."""
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key} must be at least {minimum}, got {value!r}")
    return int(value)


def _per_layer(value: Any, n_layer: int, key: str) -> tuple[int, ...]:
    values = list(value) if isinstance(value, (list, tuple)) else [value] * n_layer
    if len(values) != n_layer:
        raise ConfigError(f"{key} has {len(values)} entries for n_layer {n_layer}")
    if not all(isinstance(v, int) and v > 0 for v in values):
        raise ConfigError(f"{key} must hold positive integers, got {value}")
    return tuple(values)


class AdaptiveEmbedding(nn.Module):
    """Token embedding split into vocabulary clusters of decreasing width, projected to d_model.

    Cluster i embeds its tokens in `d_embed // div_val**i` dimensions; `projs[i]`
    (shape [d_model, d_i]) maps them to d_model. With div_val 1 there is one table and a
    projection only when d_embed != d_model. The output is scaled by sqrt(d_model), as in
    Transformer-XL, from which Archai took this module.
    """

    def __init__(self, cfg: FlexConfig) -> None:
        super().__init__()
        self.bounds = cfg.cluster_bounds()
        self.d_model = cfg.d_model
        self.scale = cfg.d_model**0.5
        self.layers = nn.ModuleList()
        self.projs = nn.ParameterList()
        if cfg.div_val == 1:
            self.layers.append(nn.Embedding(cfg.n_token, cfg.d_embed))
            if cfg.d_embed != cfg.d_model:
                self.projs.append(nn.Parameter(torch.empty(cfg.d_model, cfg.d_embed)))
        else:
            for i, (lo, hi) in enumerate(self.bounds):
                self.layers.append(nn.Embedding(hi - lo, cfg.cluster_dim(i)))
                self.projs.append(nn.Parameter(torch.empty(cfg.d_model, cfg.cluster_dim(i))))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[B, T] token ids -> [B, T, d_model] embeddings."""
        if len(self.layers) == 1:
            out = self.layers[0](input_ids)
            if len(self.projs):
                out = F.linear(out, self.projs[0])
            return out * self.scale

        flat = input_ids.reshape(-1)
        weight = self.projs[0]
        out = torch.zeros(flat.numel(), self.d_model, dtype=weight.dtype, device=weight.device)
        for i, (lo, hi) in enumerate(self.bounds):
            rows = ((flat >= lo) & (flat < hi)).nonzero().squeeze(1)
            out = out.index_copy(0, rows, F.linear(self.layers[i](flat[rows] - lo), self.projs[i]))
        return out.view(*input_ids.shape, self.d_model) * self.scale


class AdaptiveLogSoftmax(nn.Module):
    """Projected adaptive softmax: a head over the frequent tokens plus one entry per tail cluster.

    P(token in cluster i >= 1) = P_head(cluster i) * P_tail_i(token). Cluster i's logits are
    `(hidden @ proj_i) @ weight_i.T + bias_i`, where proj_i is [d_model, d_i] (absent when no
    projection is needed). Tied weights and projections are the embedding's own Parameter
    objects, registered here a second time; `module.parameters()` lists each once.
    """

    def __init__(self, cfg: FlexConfig, embedding: AdaptiveEmbedding) -> None:
        super().__init__()
        self.bounds = cfg.cluster_bounds()
        self.n_clusters = len(self.bounds) - 1
        if self.n_clusters:
            self.cluster_weight = nn.Parameter(torch.empty(self.n_clusters, cfg.d_embed))
            self.cluster_bias = nn.Parameter(torch.empty(self.n_clusters))

        # With div_val 1 there is a single output table that the clusters slice.
        tables = [(0, cfg.n_token, cfg.d_embed)] if cfg.div_val == 1 else [
            (lo, hi, cfg.cluster_dim(i)) for i, (lo, hi) in enumerate(self.bounds)
        ]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for i, (lo, hi, dim) in enumerate(tables):
            tied = embedding.layers[i].weight if cfg.tie_weight else None
            self.weights.append(tied if tied is not None else nn.Parameter(torch.empty(hi - lo, dim)))
            self.biases.append(nn.Parameter(torch.empty(hi - lo)))

        # Keyed by cluster index; a missing key means "no projection".
        self.projs = nn.ParameterDict()
        needs_proj = cfg.div_val > 1 or cfg.d_embed != cfg.d_model
        if needs_proj:
            for i in range(len(self.bounds)):
                if cfg.tie_projs[i]:
                    self.projs[str(i)] = embedding.projs[i if cfg.div_val > 1 else 0]
                else:
                    self.projs[str(i)] = nn.Parameter(torch.empty(cfg.d_model, cfg.cluster_dim(i)))

    def own_projections(self, embedding: AdaptiveEmbedding) -> list[nn.Parameter]:
        """The output projections that are not shared with `embedding`."""
        shared = {id(p) for p in embedding.projs}
        return [p for p in self.projs.values() if id(p) not in shared]

    def _logits(self, hidden: torch.Tensor, i: int) -> torch.Tensor:
        if len(self.weights) == 1:
            lo, hi = self.bounds[i]
            weight, bias = self.weights[0][lo:hi], self.biases[0][lo:hi]
        else:
            weight, bias = self.weights[i], self.biases[i]
        if i == 0 and self.n_clusters:
            weight = torch.cat([weight, self.cluster_weight])
            bias = torch.cat([bias, self.cluster_bias])
        if str(i) in self.projs:
            hidden = hidden @ self.projs[str(i)]
        return F.linear(hidden, weight, bias)

    def forward(self, hidden: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of each target: hidden [N, d_model], target [N] -> [N]."""
        head_logprob = F.log_softmax(self._logits(hidden, 0), dim=-1)
        head_size = self.bounds[0][1]
        nll = hidden.new_zeros(target.shape)
        for i, (lo, hi) in enumerate(self.bounds):
            rows = ((target >= lo) & (target < hi)).nonzero().squeeze(1)
            local = (target[rows] - lo).unsqueeze(1)
            if i == 0:
                logprob = head_logprob[rows].gather(1, local).squeeze(1)
            else:
                tail_logprob = F.log_softmax(self._logits(hidden[rows], i), dim=-1)
                # P(token) = P_head(cluster i) * P_tail(token | cluster i)
                in_cluster = head_logprob[rows, head_size + i - 1]
                logprob = in_cluster + tail_logprob.gather(1, local).squeeze(1)
            nll = nll.index_copy(0, rows, -logprob)
        return nll


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
        for p in self.wte.projs:
            p.normal_(0.0, proj_std)
        head = self.lm_head
        if head.n_clusters:
            head.cluster_weight.normal_(0.0, std)
            head.cluster_bias.zero_()
        for p in head.own_projections(self.wte):
            p.normal_(0.0, proj_std)
        if not self.cfg.tie_weight:
            for p in head.weights:
                p.normal_(0.0, std)
        for p in head.biases:
            p.zero_()

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
        hidden = self(input_ids)[:, :-1]
        target = input_ids[:, 1:]
        return self.lm_head(hidden.reshape(-1, hidden.shape[-1]), target.reshape(-1)).mean()


def build_gpt2_flex(config: dict | FlexConfig, seed: int, device: str | torch.device = "cpu") -> GPT2Flex:
    """A `GPT2Flex` with weights drawn from `seed`, in eval mode (dropout off).

    The same seed gives the same weights on every device: they are drawn on the CPU from a
    forked RNG, so the caller's global RNG state is left untouched.
    """
    cfg = config if isinstance(config, FlexConfig) else FlexConfig.from_dict(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2Flex(cfg)
        model.init_weights()
    return model.to(device).eval()


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
