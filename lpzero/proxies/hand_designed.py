"""Hand-designed proxies: `HandDesigned`, the `@hand_designed` decorator, and their one registry.

A hand-designed proxy is a plain function `fn(ctx: ProxyContext) -> float` in its family
module, registered where it is defined (as NASLib's `@measure`):

    @hand_designed("grad_norm", expressible="layer_sum__Lw(frobenius__Tw(G))", note="exactly ...")
    def grad_norm(ctx: ProxyContext) -> float: ...

The decorator leaves the function as it is and registers a `HandDesigned` proxy wrapping
it in `HAND_DESIGNED` (a name registered twice is refused). A proxy that is a sum over block
weights of a term of (W, dL/dW) alone is declared with `per_weight=PerWeight(...)` on the
function of one weight's term, `fn(weight, grad) -> float`; the decorator then returns the
proxy's function of a context (`PerWeight.value`). Registering costs nothing:
no model is built before a proxy is scored. `HAND_DESIGNED.get(name)` also answers an
entry point of the group `lpzero.proxies` and `"module:ATTR"` / `"file.py:ATTR"` naming
a `Proxy` or a function of a `ProxyContext`.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, replace
from typing import Any, Callable, ClassVar, Iterable, Iterator

from lpzero.registry import Lookup, Registry

from .base import Proxy
from .context import ProxyContext
from .per_weight import PerWeight

#: the order tables, caches and docs list the built-in proxies in (the paper's tables);
#: proxies registered otherwise follow, in registration order
TABLE_ORDER = (
    "synaptic_diversity", "synaptic_saliency", "head_importance", "activation_distance", "jacobian_cosine", "snip",
    "grasp", "grad_norm", "fisher", "synflow", "logsynflow", "num_params", "decoder_params", "attention_confidence",
    "softmax_confidence", "eznas", "lpzero_gpt2", "lpzero_flexibert", "lpzero_llama",
)


@dataclass(frozen=True)
class HandDesigned(Proxy):
    """A hand-designed proxy: a function of a `ProxyContext`.

    `expressible` is the proxy as a per-layer formula over the six proxy inputs
    (A, J, G, H, W, S) and the primitive ops (the per-layer values summed over
    layers) when it lies in LPZero's search space, else None; `doc` ends with a
    "Search space:" line giving the reason or the caveats.
    """

    name: str
    fn: Callable[[ProxyContext], float]
    doc: str = ""
    expressible: str | None = None
    #: computed without a forward or backward pass (a parameter count): `rank` needs no cache for it
    pass_free: bool = False
    orientation: int = 1
    inputs_needed: frozenset[str] = frozenset()
    #: what nas and reports read of any proxy (a found one has a tree, a benchmark and a file)
    tree: ClassVar[None] = None
    found_on: ClassVar[None] = None
    source: ClassVar[str] = "baseline"

    def score(self, ctx: ProxyContext) -> float:
        """`fn(ctx)` as a float, negated when `orientation` is -1."""
        value = float(self.fn(ctx))
        return -value if self.orientation < 0 else value

    def __call__(self, ctx: ProxyContext) -> float:
        return self.score(ctx)

    @property
    def per_weight(self) -> PerWeight | None:
        """The proxy as a sum of per-weight terms (`hand_designed(per_weight=...)`), else None:
        `score_proxies` declares it, so one streamed pass serves all such proxies of a large model."""
        spec = getattr(self.fn, "per_weight", None)
        return spec if isinstance(spec, PerWeight) else None

    def oriented(self, orientation: int) -> "HandDesigned":
        """This proxy with `orientation` (-1: used negated, as `--proxy -name`)."""
        if orientation not in (1, -1):
            raise ValueError(f"orientation must be 1 or -1, not {orientation!r}")
        return replace(self, orientation=orientation)

    @classmethod
    def of(cls, fn: Callable[[ProxyContext], float], name: str | None = None, expressible: str | None = None,
           note: str = "", pass_free: bool = False, inputs: Iterable[str] = ()) -> "HandDesigned":
        """`fn` as a proxy named `name` (default: the function's name); `note` says why (not) expressible."""
        doc = inspect.getdoc(fn) or ""
        if expressible:
            where = f"{expressible}; {note}" if note else expressible
        else:
            where = f"not expressible: {note}" if note else "not expressible."
        return cls(name or fn.__name__, fn, f"{doc}\n\nSearch space: {where}", expressible, pass_free,
                   inputs_needed=frozenset(inputs))


def _check(obj: object) -> str | None:
    if isinstance(obj, Proxy) or inspect.isfunction(obj):
        return None
    return "is neither a lpzero.proxies.Proxy nor a function of a ProxyContext"


class ProxyRegistry(Registry[Proxy]):
    """The registry of hand-designed proxies: a read-only mapping name -> `Proxy`, in table order.

    Iterating (`list`, `items`, `values`) gives the registered proxies, the built-in ones
    in `TABLE_ORDER`; a function found by entry point or `module:ATTR` is answered as
    the `HandDesigned` proxy registered for it, or wrapped as one.
    """

    def __init__(self, kind: str = "proxy", group: str | None = "lpzero.proxies") -> None:
        super().__init__(kind, group, check=_check, forms=("module:PROXY", "file.py:PROXY"))

    def __iter__(self) -> Iterator[str]:
        own = list(super().__iter__())
        return iter([n for n in TABLE_ORDER if n in own] + [n for n in own if n not in TABLE_ORDER])

    def names(self) -> list[str]:
        """Registered names (table order), then entry points."""
        own = list(self)
        return own + [n for n in super().names() if n not in own]

    def keys(self) -> list[str]:
        return list(self)

    def values(self) -> list[Proxy]:
        return [self.get(n) for n in self]

    def items(self) -> list[tuple[str, Proxy]]:
        return [(n, self.get(n)) for n in self]

    def lookup(self, name: str) -> Lookup[Proxy]:
        """As `Registry.lookup`, with a function answered as its (registered or wrapped) `HandDesigned`."""
        found = super().lookup(name)
        if isinstance(found.obj, Proxy):
            return found
        for n in super().__iter__():
            entry = self._entries[n]  # the decorator registered the function's proxy under its name
            if isinstance(entry, HandDesigned) and entry.fn is found.obj:
                return replace(found, obj=entry)
        return replace(found, obj=HandDesigned.of(found.obj))


#: every hand-designed proxy, by name
HAND_DESIGNED = ProxyRegistry()


def _per_weight_proxy(term: Callable, spec: PerWeight) -> Callable[[ProxyContext], float]:
    """The proxy function of a context summing `term` as `spec` says, named and documented as `term`.

    It carries `spec` (with `term`) as its attribute `per_weight`, so a pickled proxy finds it again
    through the function, which pickles by its name.
    """
    spec = replace(spec, term=term)

    def proxy(ctx: ProxyContext) -> float:
        return spec.value(ctx)

    functools.update_wrapper(proxy, term, assigned=("__module__", "__name__", "__qualname__", "__doc__"),
                             updated=())
    proxy.per_weight = spec
    return proxy


def hand_designed(name: str | None = None, *, expressible: str | None = None, note: str = "",
                  pass_free: bool = False, inputs: Iterable[str] = (), per_weight: PerWeight | None = None,
                  registry: Registry | None = None) -> Callable[[Callable[..., float]], Any]:
    """Decorator: register the function as the `HandDesigned` proxy `name` (default: its own name).

    `expressible`/`note`: the proxy as a tree of the search space, and why (not); `pass_free`:
    it needs no forward or backward pass; `inputs`: the six inputs it reads through
    `proxy_inputs`/`six_inputs`. Into `HAND_DESIGNED` unless `registry` is given. Returns
    the function unchanged, except with `per_weight`: the proxy is the sum of the function
    `fn(weight, grad) -> float` over the block weights `per_weight` selects, and the decorator
    returns the proxy's function of a context.
    """
    def decorate(fn: Callable[..., float]) -> Callable[[ProxyContext], float]:
        if per_weight is not None:
            fn = _per_weight_proxy(fn, replace(per_weight, name=name or fn.__name__))
        proxy = HandDesigned.of(fn, name, expressible, note, pass_free, inputs)
        summary = proxy.doc.splitlines()[0] if proxy.doc else ""
        (HAND_DESIGNED if registry is None else registry).register(proxy.name, proxy, description=summary)
        return fn
    return decorate
