"""The six proxy inputs (A, J, G, H, W, S) of a context's shared model, and scoring a tree on them.

A context extracts its inputs once: `six_inputs` (all six, what the cache samples and
the paper's proxies read) or `proxy_inputs` (the ones a proxy needs, or every one the
context's proxies declared). `score_tree` scores a proxy tree of the search space on
full (unsampled) inputs; `score_in_context` scores one as `lpzero rank` and `lpzero nas`
score a found proxy: on the context's full inputs, or from a streamed pass of its own
(`lpzero.proxies.streaming`) where those would take too much memory. Both give the same value.
"""
from __future__ import annotations

from typing import Iterable

import torch
from deap import gp

from lpzero.benchmarks.inputs import SYMBOLS, ProxyInputs, extract_inputs
from lpzero.primitives import default_pset, parse_tree, tree_inputs

from .context import ProxyContext
from .streaming import score_rows, stream_score

#: the `ProxyContext.shared` name of the full extraction
SIX_INPUTS = "six inputs"


def six_inputs(ctx: ProxyContext) -> ProxyInputs:
    """The six inputs (A, J, G, H, W, S) of the shared model, extracted once per context."""
    return ctx.shared(SIX_INPUTS, lambda: extract_inputs(ctx.benchmark, ctx.model(), ctx.inputs()))


def declare_inputs(ctx: ProxyContext, symbols: Iterable[str]) -> None:
    """Tell `ctx` that its proxies read `symbols`, so the first extraction takes them all."""
    symbols = set(symbols)
    unknown = symbols - set(SYMBOLS)
    if unknown:
        raise ValueError(f"not proxy inputs: {', '.join(sorted(unknown))} (the six are {''.join(SYMBOLS)})")
    ctx.declared_inputs |= symbols


def _subset_key(symbols: Iterable[str]) -> str:
    """The `ProxyContext.shared` name of an extraction of `symbols` (`proxy_inputs`)."""
    symbols = set(symbols)
    return f"inputs {''.join(s for s in SYMBOLS if s in symbols)}"


def proxy_inputs(ctx: ProxyContext, symbols: Iterable[str] = SYMBOLS) -> ProxyInputs:
    """Inputs of the shared model holding at least `symbols` (the others may be empty).

    The six inputs when they are extracted already or all are wanted; else one extraction
    of `symbols` and everything declared on `ctx` (`declare_inputs`), which skips the
    backward pass when no gradient (J, G) is wanted. Either gives the same tensors.
    """
    wanted = set(symbols) | ctx.declared_inputs
    if ctx.has_shared(SIX_INPUTS) or wanted >= set(SYMBOLS):
        return six_inputs(ctx)
    some = [s for s in SYMBOLS if s in wanted]
    return ctx.shared(_subset_key(some), lambda: extract_inputs(ctx.benchmark, ctx.model(), ctx.inputs(), some))


def score_in_context(ctx: ProxyContext, tree: gp.PrimitiveTree, pset: gp.PrimitiveSetTyped) -> float:
    """`score_tree(tree, proxy_inputs(ctx, ...))`: the tree's value on `ctx`'s shared model.

    On the full inputs when `ctx` holds them already, or when the model is small enough
    (`ProxyContext.streams`: at most `STREAM_ABOVE_BYTES` of parameters) that sharing one full
    extraction, which holds every gradient at once, with the context's other proxies costs
    nothing: a streamed pass could not be shared with a proxy that reads the inputs whole
    (the paper's), so it would be a second pass. Above that, from a streamed pass
    (`stream_score`), which holds a layer's gradients at a time; the value is the same.
    """
    needed = tree_inputs(tree)
    wanted = needed | ctx.declared_inputs
    shared = ctx.has_shared(SIX_INPUTS) or ctx.has_shared(_subset_key(wanted))
    if shared or not ctx.streams():
        return score_tree(tree, proxy_inputs(ctx, needed), ctx.device, pset)
    return stream_score(ctx, tree, pset)


def score_tree(tree: gp.PrimitiveTree | str, inputs: ProxyInputs, device: str | torch.device = "cpu",
               pset: gp.PrimitiveSetTyped | None = None) -> float:
    """The score of one architecture under a proxy tree, from its full inputs (row after row,
    `lpzero.proxies.streaming.score_rows`: what a streamed pass gives too)."""
    pset = pset or default_pset()
    tree = parse_tree(tree, pset) if isinstance(tree, str) else tree
    return score_rows(tree, pset, inputs, device)
