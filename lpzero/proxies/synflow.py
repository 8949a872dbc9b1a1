"""The synflow family: its own float64 model whose parameters are all replaced by |p|."""
from __future__ import annotations

import torch

from .context import ProxyContext, forward_loss, grad_of
from .hand_designed import hand_designed


def _synflow_grads(ctx: ProxyContext) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(|W|, dR/dW) per block weight of a fresh float64 model with |parameters| (shared by the family)."""
    return ctx.shared("synflow network", lambda: _compute_synflow_grads(ctx))


def _compute_synflow_grads(ctx: ProxyContext) -> list[tuple[torch.Tensor, torch.Tensor]]:
    model = ctx.fresh_model().double()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    forward_loss(ctx, model).backward()
    return [(s.param.detach(), grad_of(s)) for s in ctx.benchmark.zc_sites(model).weights]


@hand_designed("synflow", note="needs a second network with absolute-valued weights.")
def synflow(ctx: ProxyContext) -> float:
    """Synflow: sum of |W * dR/dW| on a float64 copy whose parameters are all |p|.

    Deviations from LPZero's GPT-2 path, forced by the interface: R is
    `benchmark.loss` on the real batch, where the original fed all-ones token
    embeddings (position embeddings kept) and summed the adaptive softmax's
    head-cluster logits. The original also took |x| of buffers (turning GPT-2's
    -1e4 attention mask value positive); only parameters are changed here.
    LPZero's encoder path (FlexiBERT) used the real batch and the summed last
    hidden state, which this matches.
    """
    return sum(float((w * g).abs().sum()) for w, g in _synflow_grads(ctx))


@hand_designed("logsynflow", note="needs a second network with absolute-valued weights.")
def logsynflow(ctx: ProxyContext) -> float:
    """LogSynflow: sum of |W| * |log|dR/dW||, same network and objective as `synflow`.

    An exactly-zero gradient would make the original infinite; here |dR/dW| is
    floored at the smallest positive float64 (log = -708).
    """
    total = 0.0
    for w, g in _synflow_grads(ctx):
        tiny = torch.finfo(g.dtype).tiny
        total += float((w * torch.log(g.abs().clamp_min(tiny)).abs()).sum())
    return total
