"""The proxies the LPZero paper reports as discovered (its Appendix B), and scoring any tree exactly.

They read the six inputs of one forward/backward pass (`six_inputs`, shared by every
proxy of a context); `score_tree` scores a proxy tree of the search space on the
full (unsampled) inputs, as `lpzero rank` scores a found proxy.
"""
from __future__ import annotations

import math

import torch
from deap import gp

from lpzero.benchmarks.inputs import ProxyInputs, as_weighted, extract_inputs
from lpzero.primitives import INPUT_SYMBOLS, default_pset, parse_tree, tree_inputs

from .context import ProxyContext


def six_inputs(ctx: ProxyContext) -> ProxyInputs:
    """The six inputs (A, J, G, H, W, S) of the shared model, extracted once per context."""
    return ctx.shared("six inputs", lambda: extract_inputs(ctx.benchmark, ctx.model(), ctx.inputs()))


def score_tree(tree: gp.PrimitiveTree | str, inputs: ProxyInputs, device: str | torch.device = "cpu",
               pset: gp.PrimitiveSetTyped | None = None) -> float:
    """The score of one architecture under a proxy tree, from its full inputs."""
    pset = pset or default_pset()
    tree = parse_tree(tree, pset) if isinstance(tree, str) else tree
    func = gp.compile(tree, pset)
    weighted = as_weighted(inputs, device, tree_inputs(tree))
    with torch.no_grad():
        return float(func(*[weighted[s] for s in INPUT_SYMBOLS])[0])


#: paper Appendix B, FlexiBERT: sum[(1/H)^2 + log(softmax(||A||_F))]
LPZERO_FLEXIBERT_TREE = ("add__s(layer_sum__Lh(mean__Th(square__Th(reciprocal__Th(H)))), "
                         "layer_sum__La(log__La(softmax__La(frobenius__Ta(A)))))")
#: paper Appendix B, LLaMA: sum[||W1||_1^2 + softmax(W2)^(1/2)] (W1 = W2 = the block weights here)
LPZERO_LLAMA_TREE = ("add__s(layer_sum__Lw(square__Lw(l1__Tw(W))), "
                     "layer_sum__Lw(mean__Tw(sqrt__Tw(softmax__Tw(W)))))")


def lpzero_flexibert(ctx: ProxyContext) -> float:
    """LPZero's proxy found on FlexiBERT: sum over layers of mean((1/H)^2) + log softmax_l(||A||_F).

    A tensor-valued term is reduced by its mean (as LPZero's code reduces every tensor);
    the softmax runs across layers. In LPZero's code it ran over a 0-d tensor (always 1),
    so there the second term is identically 0.
    """
    return score_tree(LPZERO_FLEXIBERT_TREE, six_inputs(ctx), ctx.device)


def lpzero_llama(ctx: ProxyContext) -> float:
    """LPZero's proxy found on LLaMA: sum over weights of ||W||_1^2 + mean(softmax(W)^(1/2))."""
    return score_tree(LPZERO_LLAMA_TREE, six_inputs(ctx), ctx.device)


def lpzero_gpt2(ctx: ProxyContext) -> float:
    """LPZero's proxy found on GPT-2: sum over weights of mean(abs(z(G))) + abs(log abs(mean(W))).

    z is LPZero's "normalize", (x - mean) / std over the tensor, which is not among the
    paper's 20 primitives (min-max is), so this one is computed directly.
    """
    x = six_inputs(ctx)
    total = 0.0
    for w, g in zip(x["W"], x["G"]):
        gz = (g.tensor - g.tensor.mean()) / g.tensor.std().clamp_min(1e-12)
        total += gz.abs().mean().item() + abs(math.log(max(abs(w.tensor.mean().item()), 1e-12)))
    return total
