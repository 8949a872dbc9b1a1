"""The proxies the LPZero paper reports as discovered (its Appendix B), registered as hand-designed baselines.

They read the six inputs of one forward/backward pass (`six_inputs`, shared by every
proxy of a context).
"""
from __future__ import annotations

import math

from lpzero.benchmarks.inputs import SYMBOLS

from .context import ProxyContext
from .hand_designed import hand_designed
from .inputs import score_tree, six_inputs

#: paper Appendix B, FlexiBERT: sum[(1/H)^2 + log(softmax(||A||_F))]
LPZERO_FLEXIBERT_TREE = ("add__s(layer_sum__Lh(mean__Th(square__Th(reciprocal__Th(H)))), "
                         "layer_sum__La(log__La(softmax__La(frobenius__Ta(A)))))")
#: paper Appendix B, LLaMA: sum[||W1||_1^2 + softmax(W2)^(1/2)] (W1 = W2 = the block weights here)
LPZERO_LLAMA_TREE = ("add__s(layer_sum__Lw(square__Lw(l1__Tw(W))), "
                     "layer_sum__Lw(mean__Tw(sqrt__Tw(softmax__Tw(W)))))")


@hand_designed("lpzero_gpt2", note="its z-score normalisation is not one of the 20 primitives.", inputs=SYMBOLS)
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


@hand_designed("lpzero_flexibert", expressible=LPZERO_FLEXIBERT_TREE, note="exactly, as a typed tree.", inputs=SYMBOLS)
def lpzero_flexibert(ctx: ProxyContext) -> float:
    """LPZero's proxy found on FlexiBERT: sum over layers of mean((1/H)^2) + log softmax_l(||A||_F).

    A tensor-valued term is reduced by its mean (as LPZero's code reduces every tensor);
    the softmax runs across layers. In LPZero's code it ran over a 0-d tensor (always 1),
    so there the second term is identically 0.
    """
    return score_tree(LPZERO_FLEXIBERT_TREE, six_inputs(ctx), ctx.device)


@hand_designed("lpzero_llama", expressible=LPZERO_LLAMA_TREE, note="exactly, as a typed tree.", inputs=SYMBOLS)
def lpzero_llama(ctx: ProxyContext) -> float:
    """LPZero's proxy found on LLaMA: sum over weights of ||W||_1^2 + mean(softmax(W)^(1/2))."""
    return score_tree(LPZERO_LLAMA_TREE, six_inputs(ctx), ctx.device)
