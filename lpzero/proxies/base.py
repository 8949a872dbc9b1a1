"""What a proxy is: a name, an orientation, what it needs, and `score(ctx)`.

Hand-designed proxies and found proxies (a tree from best.json) are both `Proxy`
objects, so cache, rank and nas score either through the same call
(`lpzero.proxies.scoring.score_proxies`).
"""
from __future__ import annotations

from abc import ABC, abstractmethod

from .context import ProxyContext


class Proxy(ABC):
    """A zero-cost proxy of one architecture on one mini-batch.

    `orientation` is +1 when a higher score should mean a better architecture as the
    proxy is written, -1 when it is used negated. `pass_free` proxies (parameter counts)
    need neither a forward nor a backward pass. `inputs_needed` names the six inputs
    (a subset of "AJGHWS") the proxy reads through `lpzero.proxies.inputs.proxy_inputs`:
    `score_proxies` extracts the union of its proxies' inputs in one pass. Every proxy
    answers `tree` (None unless found), `found_on` (the benchmark a found proxy belongs to,
    else None) and `source` (the file it came from, "baseline" for a hand-designed one).
    """

    name: str
    orientation: int = 1
    pass_free: bool = False
    inputs_needed: frozenset[str] = frozenset()

    def record(self) -> dict:
        """What checkpoints and reports store about the proxy (a resume refuses another)."""
        return {"name": self.name, "tree": getattr(self, "tree", None), "orientation": self.orientation,
                "source": getattr(self, "source", "baseline")}

    @abstractmethod
    def score(self, ctx: ProxyContext) -> float:
        """The proxy's value (orientation applied) of `ctx`'s architecture."""
