"""Proxies that are a sum over block weights of a term of (W, dL/dW) alone, and their streamed pass.

A `PerWeight` declares such a proxy as data (which weights, which term), so one definition gives
its value from the context's shared pass (`lpzero.proxies.context.shared_pass`, every gradient
held) or, for a model above `STREAM_ABOVE_BYTES`, from one streamed pass per context
(`streamed_gradients`) that computes every declared proxy's term in each weight's
post-accumulate-grad hook and frees the gradient at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import nn

from lpzero.benchmarks import BenchmarkError, WeightSite, ZCSites

from .context import SHARED_PASS, ProxyContext, clear_grads, forward_loss, recipe_weights, shared_pass


def _every_weight(weight: torch.Tensor) -> bool:
    return True


@dataclass(frozen=True)
class PerWeight:
    """A proxy whose value is a sum, over the block weights it reads, of a term of (W, dL/dW) alone.

    Declared as data, so one definition gives the value from the shared pass (every gradient
    held) or from a streamed pass (`streamed_gradients`: each gradient reduced and freed as
    backward produces it). `part`: the recipe part read (`recipe_weights`: "ffn", "mixer",
    "non_ffn"), None for every block weight whatever the recipe; `reads(W)`: which of those
    weights count, from the weight alone; `skip_ungraded`: a weight that gets no gradient adds
    nothing (else its gradient reads as zeros). `term(W, G)` (W detached) and `name` (the
    proxy's, naming its streamed pass) are filled in by `@hand_designed(per_weight=...)`.
    """

    part: str | None = None
    reads: Callable[[torch.Tensor], bool] = _every_weight
    skip_ungraded: bool = False
    term: Callable[[torch.Tensor, torch.Tensor], float] | None = None
    name: str = ""

    def weights(self, ctx: ProxyContext, model: nn.Module, sites: ZCSites) -> list[WeightSite]:
        """The weight sites whose terms are summed, in the order they are summed."""
        chosen = sites.weights if self.part is None else recipe_weights(ctx, model, sites, self.part)
        return [s for s in chosen if self.reads(s.param)]

    def term_of(self, weight: torch.Tensor, grad: torch.Tensor | None) -> float | None:
        """One weight's term given its gradient (None where backward gave it none); None: it adds nothing."""
        if grad is None:
            if self.skip_ungraded:
                return None
            grad = torch.zeros_like(weight)
        return float(self.term(weight.detach(), grad))

    def value(self, ctx: ProxyContext) -> float:
        """The sum of the terms on `ctx`'s shared model, in `weights` order.

        From the shared pass when the model is small (`ProxyContext.streams`) or the context
        holds that pass already; else from the context's streamed pass. Both hand `term` the
        same (W, G), so the value is the same.
        """
        if ctx.has_shared(SHARED_PASS) or not ctx.streams():
            run = shared_pass(ctx)
            sites = run.sites

            def term(site: WeightSite) -> float | None:
                return self.term_of(site.param, run.weight_grads[id(site.param)])
        else:
            streamed = streamed_gradients(ctx, self)
            sites, terms = streamed.sites, streamed.terms[self]

            def term(site: WeightSite) -> float | None:
                return terms[id(site.param)]
        values = (term(s) for s in self.weights(ctx, ctx.model(), sites))
        return sum((v for v in values if v is not None), 0.0)


def declare_per_weight(ctx: ProxyContext, proxies: Iterable[PerWeight]) -> None:
    """Tell `ctx` that its proxies include `proxies`, so that its first streamed pass computes all their terms."""
    ctx.declared_per_weight |= set(proxies)


@dataclass
class StreamedGradients:
    """The terms of `PerWeight` proxies from one streamed forward/backward pass of the shared model."""

    sites: ZCSites
    #: per proxy, id(weight) -> its term (None: it adds nothing), for every weight the proxy reads
    terms: dict[PerWeight, dict[int, float | None]]


def streamed_gradients(ctx: ProxyContext, proxy: PerWeight) -> StreamedGradients:
    """The context's streamed pass holding `proxy`'s terms: one pass for `proxy` and every `PerWeight`
    declared on `ctx` (`declare_per_weight`), run on first use."""
    wanted = ctx.declared_per_weight | {proxy}
    name = f"streamed gradients ({', '.join(sorted(p.name for p in wanted))})"
    return ctx.shared(name, lambda: _stream_pass(ctx, wanted))


def _stream_pass(ctx: ProxyContext, proxies: Iterable[PerWeight]) -> StreamedGradients:
    """One forward and backward pass of the shared model (as `_record_pass`: same seed, same batch)
    in which each weight's terms are computed in its post-accumulate-grad hook and its gradient is
    then freed, so backward holds at most the gradient it is reducing. Only the weights read need
    a gradient: every other parameter is frozen for the pass (no embedding or head gradient is
    held either), and the model is left as it was found (no `.grad`, no hooks, same requires_grad).
    """
    model = ctx.model()
    sites = ctx.benchmark.zc_sites(model)
    terms: dict[PerWeight, dict[int, float | None]] = {p: {} for p in proxies}
    readers: dict[int, list[PerWeight]] = {}  # id(weight) -> the proxies that read it
    read: dict[int, nn.Parameter] = {}
    for proxy in terms:
        for site in proxy.weights(ctx, model, sites):
            read[id(site.param)] = site.param
            readers.setdefault(id(site.param), [])
            if proxy not in readers[id(site.param)]:
                readers[id(site.param)].append(proxy)

    def on_gradient(param: torch.Tensor) -> None:
        for proxy in readers[id(param)]:
            if id(param) in terms[proxy]:  # a second accumulation: the first term missed part of the gradient
                raise BenchmarkError(f"{ctx.benchmark.name}: a block weight's gradient was accumulated twice")
            terms[proxy][id(param)] = proxy.term_of(param, param.grad)
        param.grad = None  # reduced: freed at once, so gradients never pile up

    frozen = [p for p in model.parameters() if p.requires_grad and id(p) not in read]
    handles = []
    clear_grads(model)
    try:
        for p in frozen:
            p.requires_grad_(False)
        handles = [p.register_post_accumulate_grad_hook(on_gradient) for p in read.values() if p.requires_grad]
        loss = forward_loss(ctx, model)
        if loss.requires_grad:  # else no weight read has a gradient (or none is read)
            loss.backward()
        del loss
    finally:
        for handle in handles:
            handle.remove()
        for p in frozen:
            p.requires_grad_(True)
        clear_grads(model)
    for key, param in read.items():  # no gradient reached them: as the shared pass's None
        for proxy in readers[key]:
            if key not in terms[proxy]:
                terms[proxy][key] = proxy.term_of(param, None)
    return StreamedGradients(sites, terms)
