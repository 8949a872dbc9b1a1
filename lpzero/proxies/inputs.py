"""The six proxy inputs (A, J, G, H, W, S) of a context's shared model, and scoring a tree on them.

A context extracts its inputs once: `six_inputs` (all six, what the cache samples and
the paper's proxies read) or `proxy_inputs` (the ones a proxy needs, or every one the
context's proxies declared). `score_tree` scores a proxy tree of the search space on
full (unsampled) inputs, as `lpzero rank` and `lpzero nas` score a found proxy.
"""
from __future__ import annotations

from typing import Iterable

import torch
from deap import gp

from lpzero.benchmarks.inputs import SYMBOLS, ProxyInputs, as_weighted, extract_inputs
from lpzero.primitives import INPUT_SYMBOLS, default_pset, parse_tree, tree_inputs

from .context import ProxyContext

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
    return ctx.shared(f"inputs {''.join(some)}",
                      lambda: extract_inputs(ctx.benchmark, ctx.model(), ctx.inputs(), some))


def score_tree(tree: gp.PrimitiveTree | str, inputs: ProxyInputs, device: str | torch.device = "cpu",
               pset: gp.PrimitiveSetTyped | None = None) -> float:
    """The score of one architecture under a proxy tree, from its full inputs."""
    pset = pset or default_pset()
    tree = parse_tree(tree, pset) if isinstance(tree, str) else tree
    func = gp.compile(tree, pset)
    weighted = as_weighted(inputs, device, tree_inputs(tree))
    with torch.no_grad():
        return float(func(*[weighted[s] for s in INPUT_SYMBOLS])[0])
