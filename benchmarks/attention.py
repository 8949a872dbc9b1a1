"""An eager attention for transformers' GPT-2 blocks whose probabilities pass a module.

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
