"""transformers' GPT-2 blocks as proxy-input sites, and an attention that makes S observable.

transformers 5.x's own eager path applies attention dropout functionally, so no
module sees the attention probabilities, and its `reorder_and_upcast_attn` path
(which does use `attn.attn_dropout`) fails in float64, which synflow needs. This
implementation is plain eager attention, except that the softmax output goes
through `module.attn_dropout`: a forward hook there sees S = [B, heads, T, T].
It is registered with transformers' `AttentionInterface` under `HOOKABLE_ATTENTION`.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Site, WeightSite

HOOKABLE_ATTENTION = "lpzero_eager_hookable_probs"


def _attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
               **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
    # `dropout` is ignored: module.attn_dropout applies the model's own probability.
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask  # eager masks are additive (0 / -inf)
    probs = module.attn_dropout(torch.softmax(scores, dim=-1))
    return torch.matmul(probs, value).transpose(1, 2), probs


def register_hookable_attention() -> str:
    """Register the implementation (idempotent) and return its name."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import eager_mask

    AttentionInterface.register(HOOKABLE_ATTENTION, _attention)
    AttentionMaskInterface.register(HOOKABLE_ATTENTION, eager_mask)
    return HOOKABLE_ATTENTION


def gpt2_block_sites(blocks) -> tuple[list[Site], list[Site], list[Site], list[WeightSite]]:
    """(activations, heads, softmax, weights) sites of a sequence of transformers `GPT2Block`s.

    A: `mlp.act` output; H: input of `attn.c_proj` (the merged heads); S: input of
    `attn.attn_dropout` (the probabilities, before any dropout); W/G: the Conv1D weights
    of `attn.c_attn`, `attn.c_proj`, `mlp.c_fc`, `mlp.c_proj`.
    """
    activations, heads, softmax, weights = [], [], [], []
    for i, block in enumerate(blocks):
        activations.append(Site(i, block.mlp.act, "output", f"h.{i}.mlp.act"))
        heads.append(Site(i, block.attn.c_proj, "input", f"h.{i}.attn.c_proj"))
        softmax.append(Site(i, block.attn.attn_dropout, "input", f"h.{i}.attn.attn_dropout"))
        for part in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
            module = block.get_submodule(part)
            weights.append(WeightSite(i, f"h.{i}.{part}", module.weight))
    return activations, heads, softmax, weights
