"""The adaptive input embedding and projected adaptive softmax of Archai's language models, shared by families.

Both LiteTransformerSearch families (GPT-2 flex, `gpt2_flex`, and Transformer-XL, `transxl`) embed
their vocabulary in frequency clusters of decreasing width, projected to `d_model`, and predict it
with the matching projected adaptive softmax, weights and projections tied as the config says. A
config gives these modules its vocabulary through `AdaptiveVocabulary`; `integer`, `per_layer` and
`clean_cutoffs` read the fields both families' `model_config.yaml` files share. No transformers
import here: the Transformer-XL family does not need it.
"""
from __future__ import annotations

from typing import Any, Callable, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from ..base import ConfigError


class AdaptiveVocabulary:
    """What the adaptive modules read of a config (a frozen dataclass mixing this in): `n_token`, `d_model`,
    `d_embed`, `div_val`, `cutoffs` (cleaned: ends at n_token), `tie_weight`, `tie_projs` (one per cluster)."""

    n_token: int
    d_model: int
    d_embed: int
    div_val: int
    cutoffs: tuple[int, ...]
    tie_weight: bool
    tie_projs: tuple[bool, ...]

    def cluster_bounds(self) -> list[tuple[int, int]]:
        """[lo, hi) token-id range of each vocabulary cluster (the first is the head)."""
        ends = [0, *self.cutoffs]
        return list(zip(ends[:-1], ends[1:]))

    def cluster_dim(self, i: int) -> int:
        """Embedding width of cluster `i` (every cluster has d_embed when div_val is 1)."""
        return self.d_embed // self.div_val**i


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


def integer(cfg: dict, key: str, minimum: int | None = None) -> int:
    """cfg[key] as an int; ConfigError for a fraction (n_layer: 2.7), a string or a bool."""
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key} must be at least {minimum}, got {value!r}")
    return int(value)


def per_layer(value: Any, n_layer: int, key: str) -> tuple[int, ...]:
    """cfg[key] for every layer: a list of n_layer positive integers, or one for all; ConfigError otherwise."""
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

    def __init__(self, cfg: AdaptiveVocabulary) -> None:
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

    def __init__(self, cfg: AdaptiveVocabulary, embedding: AdaptiveEmbedding) -> None:
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


@torch.no_grad()
def init_adaptive(embedding: AdaptiveEmbedding, softmax: AdaptiveLogSoftmax, draw: Callable[[torch.Tensor], Any],
                  proj_std: float, tie_weight: bool) -> None:
    """Archai's initialisation of the adaptive modules, in its order: projections Normal(0, proj_std), the
    softmax's cluster weights (and untied output weights) by `draw`, its biases 0."""
    for p in embedding.projs:
        p.normal_(0.0, proj_std)
    if softmax.n_clusters:
        draw(softmax.cluster_weight)
        softmax.cluster_bias.zero_()
    for p in softmax.own_projections(embedding):
        p.normal_(0.0, proj_std)
    if not tie_weight:
        for p in softmax.weights:
            draw(p)
    for p in softmax.biases:
        p.zero_()


__all__ = ["AdaptiveEmbedding", "AdaptiveLogSoftmax", "AdaptiveVocabulary", "clean_cutoffs", "init_adaptive", "integer",
           "per_layer"]


Model = TypeVar("Model", bound=nn.Module)


def seeded_model(make: Callable[[], Model], seed: int, device: str | torch.device = "cpu") -> Model:
    """`make()`'s model with its `init_weights()` drawn from `seed`, on `device`, in eval mode (dropout off).

    The same seed gives the same weights on every device: they are drawn on the CPU from a forked RNG,
    so the caller's global RNG state is left untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = make()
        model.init_weights()
    return model.to(device).eval()


def next_token_loss(model: nn.Module, head: AdaptiveLogSoftmax, input_ids: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of `head` predicting token t+1 from `model`'s hidden state at t, over the batch."""
    hidden = model(input_ids)[:, :-1]
    target = input_ids[:, 1:]
    return head(hidden.reshape(-1, hidden.shape[-1]), target.reshape(-1)).mean()
