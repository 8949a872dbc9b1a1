"""Scoring proxies on one architecture: the one call cache, rank and nas make.

`score_proxies(proxies, ctx)` runs each proxy on the same `ProxyContext`, so work several
of them read (the model, the recorded forward/backward pass, the six inputs, the synflow
network) is done once, and reports each proxy's value and what it would cost alone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from .base import Proxy
from .context import ProxyContext
from .per_weight import declare_per_weight
from .hand_designed import HandDesigned
from .inputs import declare_inputs


@dataclass(frozen=True)
class ProxyResult:
    """One proxy's score of one architecture.

    `value` is the score (orientation applied; NaN when the proxy failed), `seconds` what
    the proxy would take alone on a fresh context (`ProxyContext.timed`), of which
    `pass_seconds` in shared passes (building the model, forward/backward, extraction).
    `error` says why the score is invalid (the proxy raised, or its value is not finite).
    """

    value: float
    seconds: float
    pass_seconds: float = 0.0
    error: str | None = None

    @property
    def valid(self) -> bool:
        """A finite score of a proxy that ran."""
        return self.error is None


def score_proxies(proxies: Sequence[Proxy], ctx: ProxyContext, strict: bool = False) -> dict[str, ProxyResult]:
    """Each proxy's result on `ctx`'s architecture, by name, in the order given (which is the order they run in).

    One shared context: the inputs all proxies declare (`Proxy.inputs_needed`) are extracted
    in one pass, the per-weight gradient proxies (`HandDesigned.per_weight`) of a large model
    share one streamed pass, and each shared pass runs once whichever proxy needs it first. A proxy that
    raises is an invalid result with the error as its reason, unless `strict` (the error
    propagates, as a cache build or a search wants). Two proxies of one name are refused.
    """
    names = [p.name for p in proxies]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"proxies scored together need distinct names; given twice: {', '.join(twice)}")
    declare_inputs(ctx, {s for p in proxies for s in p.inputs_needed})
    declare_per_weight(ctx, [p.per_weight for p in proxies if isinstance(p, HandDesigned) and p.per_weight])
    results: dict[str, ProxyResult] = {}
    for proxy in proxies:
        try:
            value, seconds, passes = ctx.timed_parts(proxy.score)
        except Exception as e:  # one proxy failing leaves the others' scores valid
            if strict:
                raise
            results[proxy.name] = ProxyResult(math.nan, 0.0, 0.0, f"{type(e).__name__}: {e}")
            continue
        value = float(value)
        error = None if math.isfinite(value) else f"non-finite value {value}"
        results[proxy.name] = ProxyResult(value, seconds, passes, error)
    return results
