"""The context every hand-designed proxy reads: one architecture on one mini-batch.

`ProxyContext` builds the model once and shares work several proxies read
(`ProxyContext.shared`); `shared_pass` is the one recorded forward/backward pass
most of them read (`SharedPass`). A proxy that is a sum over block weights of a
term of (W, dL/dW) alone declares itself as a `PerWeight` (`lpzero.proxies.per_weight`):
its value is read from that pass, or, for a model above `STREAM_ABOVE_BYTES`, from one
streamed pass that reduces each gradient as backward produces it and frees it at once. Recipes (`RECIPES`) say which parts of the network the layer-selective
proxies read, as each original implementation did.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from lpzero.benchmarks import Batch, Benchmark, BenchmarkError, Site, WeightSite, ZCSites
from lpzero.benchmarks.hooks import recording, site_targets
from lpzero.errors import UnknownNameError

#: which parts of the network the layer-selective proxies read
RECIPES = {
    "lpzero": "LPZero's GPT-2 code path: every linear layer of the blocks",
    "tfnas": "training-free-nas's ELECTRA path: feed-forward / token-mixer weights, activation outputs",
}

#: benchmark name -> recipe of the original that produced its reference scores
DEFAULT_RECIPES = {"flexibert": "tfnas"}

#: parameters (bytes) above which proxies stream the gradients they read (a found proxy its inputs,
#: a `PerWeight` proxy its terms) rather than share a pass that holds every gradient at once
STREAM_ABOVE_BYTES = 1 << 30

#: the `ProxyContext.shared` name of the recorded forward/backward pass (`shared_pass`)
SHARED_PASS = "forward/backward"


def default_recipe(benchmark: Benchmark) -> str:
    """The recipe whose original produced `benchmark`'s reference scores ("lpzero" if none)."""
    return DEFAULT_RECIPES.get(benchmark.name, "lpzero")


@dataclass
class ProxyContext:
    """One architecture on one mini-batch: everything a proxy needs.

    Proxies that only read the network share one model via `model()`; they must
    leave it as they found it (no `.grad`, no hooks). Proxies that change weights
    (synflow) build their own with `fresh_model()`; both use the same seed, so
    they start from identical weights. `recipe` (a key of `RECIPES`) defaults to
    `default_recipe(benchmark)`.
    """

    benchmark: Benchmark
    arch_id: str
    seed: int
    batch: Batch
    device: str | torch.device = "cpu"
    recipe: str | None = None
    _batch_on_device: Batch | None = field(default=None, init=False, repr=False)
    _passes: dict = field(default_factory=dict, init=False, repr=False)
    _pass_seconds: dict = field(default_factory=dict, init=False, repr=False)
    _pass_needs: dict = field(default_factory=dict, init=False, repr=False)
    _used: set = field(default_factory=set, init=False, repr=False)
    #: six-input symbols the context's proxies declared (`lpzero.proxies.inputs.declare_inputs`): one
    #: extraction then serves them all
    declared_inputs: set = field(default_factory=set, init=False, repr=False)
    #: `PerWeight` proxies the context's proxies declared (`lpzero.proxies.per_weight.declare_per_weight`): one streamed pass
    #: then serves them all
    declared_per_weight: set = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.recipe is None:
            self.recipe = default_recipe(self.benchmark)
        if self.recipe not in RECIPES:
            raise UnknownNameError("recipe", self.recipe, list(RECIPES))

    @classmethod
    def create(
        cls,
        benchmark: Benchmark,
        arch_id: str,
        seed: int,
        device: str | torch.device = "cpu",
        recipe: str | None = None,
    ) -> "ProxyContext":
        """A context whose batch is `benchmark.make_batch(seed)`."""
        return cls(benchmark, arch_id, seed, benchmark.make_batch(seed), device, recipe)

    def fresh_model(self) -> nn.Module:
        """A new model with the architecture's seeded random weights."""
        return self.benchmark.build_model(self.arch_id, self.seed, self.device)

    def model(self) -> nn.Module:
        """The shared model (built on first use)."""
        return self.shared("model", self.fresh_model)

    def shared(self, name: str, compute: Callable[[], object]) -> object:
        """`compute()` once per context under `name`; later calls return the same object.

        Work that several proxies read (the model, one recorded forward/backward,
        the synflow network, the six inputs) is done once per architecture. Each
        pass's time is kept, so `timed` can charge it to every proxy that reads it.
        """
        if name not in self._passes:
            outer, self._used = self._used, set()
            before = sum(self._pass_seconds.values())
            start = time.perf_counter()
            try:
                self._passes[name] = compute()
            except BaseException:
                self._used = outer | self._used  # a failed pass leaves the reader's record as it was
                raise
            nested = sum(self._pass_seconds.values()) - before  # e.g. the model built inside a pass
            self._pass_seconds[name] = time.perf_counter() - start - nested
            self._pass_needs[name], self._used = self._used, outer
        self._used |= {name} | self._pass_needs[name]
        return self._passes[name]

    def has_shared(self, name: str) -> bool:
        """Whether the shared work `name` is done (`shared` would not compute it again)."""
        return name in self._passes

    def timed(self, fn: Callable[["ProxyContext"], float]) -> tuple[float, float]:
        """(fn(self), seconds fn would take alone on a fresh context).

        Standalone cost = the time of fn's own work plus the full time of every
        shared pass it read, whether it computed that pass or found it done, so a
        proxy's cost does not depend on the order proxies are run in.
        """
        value, seconds, _ = self.timed_parts(fn)
        return value, seconds

    def timed_parts(self, fn: Callable[["ProxyContext"], float]) -> tuple[float, float, float]:
        """(fn(self), seconds fn would take alone, the part of them spent in the shared passes it read)."""
        self._used = set()
        before = sum(self._pass_seconds.values())
        start = time.perf_counter()
        value = fn(self)
        elapsed = time.perf_counter() - start
        computed_now = sum(self._pass_seconds.values()) - before
        passes = sum(self._pass_seconds[n] for n in self._used)
        return value, elapsed - computed_now + passes, passes

    def inputs(self) -> Batch:
        """The mini-batch on the context's device."""
        if self._batch_on_device is None:
            self._batch_on_device = self.batch.to(self.device)
        return self._batch_on_device

    def streams(self) -> bool:
        """Whether the shared model's parameters take more than `STREAM_ABOVE_BYTES`, so that proxies
        reading its gradients stream them rather than hold them all."""
        return sum(p.numel() * p.element_size() for p in self.model().parameters()) > STREAM_ABOVE_BYTES


def forward_loss(ctx: ProxyContext, model: nn.Module) -> torch.Tensor:
    """`benchmark.loss` under a fixed seed (reproducible dropout masks)."""
    device = torch.device(ctx.device)
    cuda_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(ctx.seed)
        return ctx.benchmark.loss(model, ctx.inputs())


def clear_grads(model: nn.Module) -> None:
    for p in model.parameters():
        p.grad = None


def linear_layers(model: nn.Module, weights: list[WeightSite]) -> list[tuple[nn.Module, nn.Parameter]]:
    """(owning module, weight) for each module that owns a weight site, once, in site order."""
    owner: dict[int, nn.Module] = {}
    for module in model.modules():
        for p in module.parameters(recurse=False):
            owner.setdefault(id(p), module)
    layers: list[tuple[nn.Module, nn.Parameter]] = []
    for site in weights:
        module = owner.get(id(site.param))
        if module is None:
            raise BenchmarkError(f"weight site {site.name!r} is not a parameter of the model")
        if not any(module is seen for seen, _ in layers):
            layers.append((module, site.param))
    return layers


def block_part(model: nn.Module, starts: list[Site], weights: list[WeightSite]) -> list[WeightSite]:
    """The weights of the sub-block around each start site.

    From a site's module, climb the module tree until the subtree owns at least
    one weight of the site's layer, and take all of that layer's weights in it.
    From an activation site this finds the feed-forward sub-block (GPT-2 `mlp`,
    FlexiBERT `feed_forward`); from a softmax map, the token mixer (GPT-2 `attn`,
    FlexiBERT `operation`), whatever the modules are called.
    """
    names = {id(m): name for name, m in model.named_modules()}
    owner_name: dict[int, str] = {}
    for module in model.modules():
        for p in module.parameters(recurse=False):
            owner_name.setdefault(id(p), names[id(module)])

    def inside(weight: WeightSite, prefix: str) -> bool:
        name = owner_name[id(weight.param)]
        return prefix == "" or name == prefix or name.startswith(prefix + ".")

    picked: list[WeightSite] = []
    for site in starts:
        candidates = [w for w in weights if w.layer == site.layer]
        prefix = names[id(site.module)]
        found = [w for w in candidates if inside(w, prefix)]
        while not found and prefix:
            prefix = prefix.rpartition(".")[0]
            found = [w for w in candidates if inside(w, prefix)]
        picked += [w for w in found if not any(w is seen for seen in picked)]
    return picked


def recipe_weights(ctx: ProxyContext, model: nn.Module, sites: ZCSites, part: str) -> list[WeightSite]:
    """The block weights a layer-selective proxy reads under `ctx.recipe`.

    part: "ffn" (feed-forward), "mixer" (the token-mixing operation, found from
    each layer's softmax sites, or its heads sites when it has none) or "non_ffn"
    (everything but the feed-forward). The "lpzero" recipe always reads all weights.
    """
    if ctx.recipe == "lpzero":
        return sites.weights
    ffn = block_part(model, sites.activations, sites.weights)
    if part == "ffn":
        return ffn
    if part == "non_ffn":
        return [w for w in sites.weights if not any(w is f for f in ffn)]
    if part != "mixer":
        raise UnknownNameError("block part", part, ["ffn", "mixer", "non_ffn"])
    with_softmax = {s.layer for s in sites.softmax}
    starts = sites.softmax + [s for s in sites.heads if s.layer not in with_softmax]
    return block_part(model, starts, sites.weights)


def grad_of(site: WeightSite) -> torch.Tensor:
    g = site.param.grad
    return torch.zeros_like(site.param) if g is None else g


def as_matrix(t: torch.Tensor) -> torch.Tensor:
    # Rows = the first stored dimension, as the originals' Linear/Conv1D weights.
    return t.reshape(t.shape[0], -1)


@dataclass
class SharedPass:
    """One recorded forward and backward pass of the shared model.

    Most proxies read the same things: dL/dW of the block weights, the outputs
    of the block linear layers and their gradients (fisher, activation and
    attention confidence), the activation and softmax sites' outputs, and the
    gradient of the position-embedding table or, without one, at the embedding
    site (jacobian_cosine). Recording them all in one
    pass gives each proxy exactly what its own forward/backward would (same seed,
    same batch) at the cost of one.
    """

    sites: ZCSites
    #: (module, weight) of each module owning a weight site, once, in site order
    layers: list[tuple[nn.Module, nn.Parameter]]
    #: id(weight) -> dL/dW, None where the weight has no gradient
    weight_grads: dict[int, torch.Tensor | None]
    #: per layer, its output on each call, and the gradient of L with respect to it
    layer_outputs: list[list[torch.Tensor]]
    layer_output_grads: list[list[torch.Tensor | None]]
    #: per activation / softmax / tfnas_softmax site, its recorded tensor on each call
    activations: list[list[torch.Tensor]]
    softmax: list[list[torch.Tensor]]
    tfnas_softmax: list[list[torch.Tensor]]
    #: the embedding site's output gradient on each call
    embedding_grads: list[torch.Tensor]
    #: dL/d(position-embedding table), if the sites name one
    position_grad: torch.Tensor | None

    def grad(self, site: WeightSite) -> torch.Tensor:
        """dL/dW of a weight site (zeros where it has none)."""
        g = self.weight_grads[id(site.param)]
        return torch.zeros_like(site.param) if g is None else g

    def outputs_of(self, modules: list[nn.Module]) -> list[torch.Tensor]:
        """The recorded outputs of `modules` (some of `layers`), in layer order."""
        wanted = {id(m) for m in modules}
        return [out for (m, _), rec in zip(self.layers, self.layer_outputs) if id(m) in wanted for out in rec]


def _record_pass(ctx: ProxyContext) -> SharedPass:
    model = ctx.model()
    sites = ctx.benchmark.zc_sites(model)
    layers = linear_layers(model, sites.weights)
    targets = ([(layer, "output") for layer, _ in layers] + site_targets(sites.activations)
               + site_targets(sites.softmax) + site_targets(sites.tfnas_softmax) + [(sites.embedding, "output")])
    clear_grads(model)
    with recording(targets) as rec:
        loss = forward_loss(ctx, model)
    records = rec.per_target
    n, n_act, n_soft, n_tfnas = len(layers), len(sites.activations), len(sites.softmax), len(sites.tfnas_softmax)
    layer_records, embedding_records = records[:n], records[-1]
    params = list({id(s.param): s.param for s in sites.weights}.values())
    outputs = [out for rec in layer_records for out in rec]
    positions = [] if sites.position_embedding is None else [sites.position_embedding]
    # One backward pass for every gradient any proxy reads; split back in the order asked.
    grads = iter(torch.autograd.grad(loss, params + outputs + embedding_records + positions, allow_unused=True))
    weight_grads = {id(p): next(grads) for p in params}
    output_grads = [[next(grads) for _ in rec] for rec in layer_records]
    embedding_grads = [g for g in (next(grads) for _ in embedding_records) if g is not None]
    position_grad = next(grads) if positions else None
    return SharedPass(
        sites=sites,
        layers=layers,
        weight_grads=weight_grads,
        layer_outputs=[[out.detach() for out in rec] for rec in layer_records],
        layer_output_grads=output_grads,
        activations=[[t.detach() for t in rec] for rec in records[n: n + n_act]],
        softmax=[[t.detach() for t in rec] for rec in records[n + n_act: n + n_act + n_soft]],
        tfnas_softmax=[[t.detach() for t in rec] for rec in records[n + n_act + n_soft: n + n_act + n_soft + n_tfnas]],
        embedding_grads=embedding_grads,
        position_grad=position_grad,
    )


def shared_pass(ctx: ProxyContext) -> SharedPass:
    """The context's recorded forward/backward pass (run on first use)."""
    return ctx.shared(SHARED_PASS, lambda: _record_pass(ctx))
