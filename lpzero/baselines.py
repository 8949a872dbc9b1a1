"""Hand-designed zero-cost proxies: the baselines LPZero is compared against.

Each baseline is a plain function `fn(ctx: ProxyContext) -> float`, registered
once in `BASELINES`. A proxy sees an architecture only through the `Benchmark`
interface: `build_model`, `loss` (the scalar of the one backward pass) and
`zc_sites` (where embedding, activations, heads, softmax maps and block weights
live). "Block linear layers" below means the modules that own the `zc_sites`
weights; on the LiteTransformerSearch GPT-2 these are exactly the Conv1D layers
the original code visited (c_attn, attn.c_proj, c_fc, mlp.c_proj).

| proxy                | what it measures                                          | original          |
|----------------------|-----------------------------------------------------------|-------------------|
| synaptic_diversity   | sum of nuclear norm(W) * nuclear norm(dL/dW)           [r] | L, T              |
| synaptic_saliency    | sum of abs(W * dL/dW)                                  [r] | L, T              |
| head_importance      | sum of abs(W * dL/dW) over weights with >= 128 rows    [r] | L (a), T          |
| activation_distance  | token-pair sign agreement of hidden features           [r] | L, T              |
| jacobian_cosine      | 1 - mean pairwise abs(cos)^(1/20), position-grad columns | L (b), T          |
| snip                 | sum of abs(dL/dmask) = sum of abs(W * dL/dW)              | L                 |
| grasp                | -sum of W * (Hessian @ gradient)                          | L                 |
| grad_norm            | sum over weights of the Frobenius norm of dL/dW           | L                 |
| fisher               | per channel 0.5 * mean (layer output * its gradient)^2    | L                 |
| synflow              | sum of abs(W * dR/dW) of a network with abs weights       | L                 |
| logsynflow           | sum of W * abs(log abs(dR/dW)), same network as synflow   | L (synflow.py)    |
| num_params           | number of parameters                                      | L (c), T          |
| decoder_params       | number of non-embedding parameters                        | L (d)             |
| attention_confidence | sum of mean(max over tokens) of linear-layer outputs   [r] | L, T (e)          |
| softmax_confidence   | sum of mean(max over heads) of attention maps          [r] | T (f)             |
| eznas                | sum of sigmoid(log abs det(sign(G) sign(G)^T))            | L                 |

L = pprp/LPZero `lpzero/predictor/measures/<proxy>.py`, whose GPT-2 code path
produced `reference/lts_gpt2_wt103/<proxy>_scores_seed_1111.yaml`; except
(a) attention_head_importance.py, (b) jacobian_score.py with the cosine of
jacobian_covariance.py, (c) parameters.py, (d) "nparams" in
`lpzero/runner/eval_rank_gpt2.py`, (e) attention_confidence.py (its
head_confidence is the same code).
T = aaronserianni/training-free-nas `BERT_metrics.ipynb`, which produced
`reference/flexibert/BERT_results_activation.csv`; (e) "Head Confidence",
(f) "Head Softmax Confidence".

[r] = which layers or maps are read depends on the context's recipe (below).

Conventions shared by all proxies (where they differ from an original, the
proxy's docstring says so):

- One mini-batch, `ctx.batch`; one objective, `benchmark.loss` (GPT-2: the LM
  loss, as LPZero's GPT-2 path; FlexiBERT: a random linear readout of the last
  hidden state, or under `hidden_size_compat` the originals' sum of it).
- `lpzero_gpt2`, `lpzero_flexibert`, `lpzero_llama` are the three proxies the
  LPZero paper reports as discovered (its Appendix B), computed from the six
  inputs of one forward/backward pass (`benchmarks.inputs.extract_inputs`).
- Work several proxies read is done once per architecture (`ProxyContext.shared`):
  the model, one recorded forward/backward pass (`SharedPass`: weight gradients,
  linear-layer outputs and their gradients, activation and softmax maps, the
  embedding gradient), the synflow network, the six inputs. Each proxy's
  reported cost (`ProxyContext.timed`) is what it would take alone: its own work
  plus every shared pass it reads.
- Every forward pass runs under `torch.manual_seed(ctx.seed)` inside a forked RNG,
  so dropout masks (if the model is in training mode) are reproducible and the
  caller's random state is untouched. The model's mode is whatever
  `build_model` returns.
- Where the two originals read different parts of the network, the context's
  `recipe` decides (see `RECIPES`): "lpzero" (LPZero's GPT-2 path: every linear
  layer of the blocks; the default) or "tfnas" (training-free-nas's ELECTRA path:
  feed-forward or token-mixer subsets, activation-function outputs, the maps its
  softmax hook saw), the default
  for the benchmark named "flexibert", whose reference scores it produced. LPZero's
  own FlexiBERT runs (`runner/eval_rank_bert.py`) use the training-free-nas recipe.
- Scores keep the originals' signs. The paper reports correlation magnitudes;
  GraSP and Jacobian cosine correlate with the opposite sign to the others.
"""
from __future__ import annotations

import contextlib
import inspect
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import torch
from torch import nn

from benchmarks.base import Batch, Benchmark, Site, WeightSite, ZCSites

#: which parts of the network the layer-selective proxies read
RECIPES = {
    "lpzero": "LPZero's GPT-2 code path: every linear layer of the blocks",
    "tfnas": "training-free-nas's ELECTRA path: feed-forward / token-mixer weights, activation outputs",
}

#: benchmark name -> recipe of the original that produced its reference scores
DEFAULT_RECIPES = {"flexibert": "tfnas"}


def default_recipe(benchmark: Benchmark) -> str:
    """The recipe whose original produced `benchmark`'s reference scores ("lpzero" if none)."""
    return DEFAULT_RECIPES.get(benchmark.name, "lpzero")


# --------------------------------------------------------------------------
# Context and plumbing
# --------------------------------------------------------------------------


@dataclass
class ProxyContext:
    """One architecture on one mini-batch: everything a baseline needs.

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

    def __post_init__(self) -> None:
        if self.recipe is None:
            self.recipe = default_recipe(self.benchmark)
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {self.recipe!r} (known: {', '.join(RECIPES)})")

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
            self._passes[name] = compute()
            nested = sum(self._pass_seconds.values()) - before  # e.g. the model built inside a pass
            self._pass_seconds[name] = time.perf_counter() - start - nested
            self._pass_needs[name], self._used = self._used, outer
        self._used |= {name} | self._pass_needs[name]
        return self._passes[name]

    def timed(self, fn: Callable[["ProxyContext"], float]) -> tuple[float, float]:
        """(fn(self), seconds fn would take alone on a fresh context).

        Standalone cost = the time of fn's own work plus the full time of every
        shared pass it read, whether it computed that pass or found it done, so a
        proxy's cost does not depend on the order proxies are run in.
        """
        self._used = set()
        before = sum(self._pass_seconds.values())
        start = time.perf_counter()
        value = fn(self)
        elapsed = time.perf_counter() - start
        computed_now = sum(self._pass_seconds.values()) - before
        return value, elapsed - computed_now + sum(self._pass_seconds[n] for n in self._used)

    def inputs(self) -> Batch:
        """The mini-batch on the context's device."""
        if self._batch_on_device is None:
            self._batch_on_device = self.batch.to(self.device)
        return self._batch_on_device


def _forward_loss(ctx: ProxyContext, model: nn.Module) -> torch.Tensor:
    """`benchmark.loss` under a fixed seed (reproducible dropout masks)."""
    device = torch.device(ctx.device)
    cuda_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(ctx.seed)
        return ctx.benchmark.loss(model, ctx.inputs())


def _clear_grads(model: nn.Module) -> None:
    for p in model.parameters():
        p.grad = None


def _first_tensor(value: object) -> torch.Tensor:
    # Some modules return tuples (e.g. attention returning (output, weights)).
    while isinstance(value, (tuple, list)):
        value = value[0]
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"expected a tensor at a proxy site, got {type(value).__name__}")
    return value


@contextlib.contextmanager
def _recording(targets: Iterable[tuple[nn.Module, str]]) -> Iterator[list[list[torch.Tensor]]]:
    """Record each module's input or output ("input"/"output") on every call.

    Yields one list per target; a module called twice in a forward pass records
    twice. The hooks are removed on exit, whatever happens.
    """
    targets = list(targets)
    records: list[list[torch.Tensor]] = [[] for _ in targets]
    handles = []

    def recorder(store: list[torch.Tensor], where: str) -> Callable:
        def hook(module: nn.Module, args: tuple, kwargs: dict, output: object) -> None:
            if where == "input":
                store.append(_first_tensor(args if args else next(iter(kwargs.values()))))
            else:
                store.append(_first_tensor(output))

        return hook

    try:
        for store, (module, where) in zip(records, targets):
            handles.append(module.register_forward_hook(recorder(store, where), with_kwargs=True))
        yield records
    finally:
        for handle in handles:
            handle.remove()


def _linear_layers(model: nn.Module, weights: list[WeightSite]) -> list[tuple[nn.Module, nn.Parameter]]:
    """(owning module, weight) for each module that owns a weight site, once, in site order."""
    owner: dict[int, nn.Module] = {}
    for module in model.modules():
        for p in module.parameters(recurse=False):
            owner.setdefault(id(p), module)
    layers: list[tuple[nn.Module, nn.Parameter]] = []
    for site in weights:
        module = owner.get(id(site.param))
        if module is None:
            raise ValueError(f"weight site {site.name!r} is not a parameter of the model")
        if not any(module is seen for seen, _ in layers):
            layers.append((module, site.param))
    return layers


def _block_part(model: nn.Module, starts: list[Site], weights: list[WeightSite]) -> list[WeightSite]:
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


def _recipe_weights(ctx: ProxyContext, model: nn.Module, sites: ZCSites, part: str) -> list[WeightSite]:
    """The block weights a layer-selective proxy reads under `ctx.recipe`.

    part: "ffn" (feed-forward), "mixer" (the token-mixing operation, found from
    each layer's softmax sites, or its heads sites when it has none) or "non_ffn"
    (everything but the feed-forward). The "lpzero" recipe always reads all weights.
    """
    if ctx.recipe == "lpzero":
        return sites.weights
    ffn = _block_part(model, sites.activations, sites.weights)
    if part == "ffn":
        return ffn
    if part == "non_ffn":
        return [w for w in sites.weights if not any(w is f for f in ffn)]
    if part != "mixer":
        raise ValueError(f"unknown block part {part!r}")
    with_softmax = {s.layer for s in sites.softmax}
    starts = sites.softmax + [s for s in sites.heads if s.layer not in with_softmax]
    return _block_part(model, starts, sites.weights)


def _site_targets(sites: list[Site]) -> list[tuple[nn.Module, str]]:
    return [(s.module, s.where) for s in sites]


def _grad_of(site: WeightSite) -> torch.Tensor:
    g = site.param.grad
    return torch.zeros_like(site.param) if g is None else g


def _as_matrix(t: torch.Tensor) -> torch.Tensor:
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
    layers = _linear_layers(model, sites.weights)
    targets = ([(layer, "output") for layer, _ in layers] + _site_targets(sites.activations)
               + _site_targets(sites.softmax) + _site_targets(sites.tfnas_softmax) + [(sites.embedding, "output")])
    _clear_grads(model)
    with _recording(targets) as records:
        loss = _forward_loss(ctx, model)
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
    return ctx.shared("forward/backward", lambda: _record_pass(ctx))


# --------------------------------------------------------------------------
# Gradient-based proxies (one forward + backward on the shared model)
# --------------------------------------------------------------------------


def _sum_abs_weight_times_grad(ctx: ProxyContext, part: str | None = None, min_rows: int = 0) -> float:
    """sum |W * dL/dW| over all block weights, or over a recipe `part` of them."""
    run = shared_pass(ctx)
    weights = run.sites.weights if part is None else _recipe_weights(ctx, ctx.model(), run.sites, part)
    return sum(
        float((s.param.detach().double() * run.grad(s).double()).abs().sum())
        for s in weights
        if s.param.shape[0] >= min_rows
    )


def snip(ctx: ProxyContext) -> float:
    """SNIP: sum over block weights of |W * dL/dW|.

    The original multiplies each weight by a mask of ones and sums |dL/dmask|,
    which is exactly |W * dL/dW|; this computes it directly.
    """
    return _sum_abs_weight_times_grad(ctx)


def synaptic_saliency(ctx: ProxyContext) -> float:
    """Synaptic saliency: sum of |W * dL/dW| over block weights.

    Recipe "lpzero": all block weights (equal to `snip` on the same model).
    Recipe "tfnas": the feed-forward weights only (ElectraLayer.intermediate
    and .output in the original).
    """
    return _sum_abs_weight_times_grad(ctx, part="ffn")


#: the originals only count weights whose first dimension has at least this many rows
HEAD_IMPORTANCE_MIN_ROWS = 128


def head_importance(ctx: ProxyContext) -> float:
    """Attention head importance: sum of |W * dL/dW| over weights with >= 128 rows.

    The row filter is both originals' `weight.shape[0] >= 128` on the stored
    weight: for GPT-2's Conv1D ([in, out]) it drops every layer whose input
    width is below 128 (all but mlp.c_proj when d_model = 64); for nn.Linear
    ([out, in]) it tests the output width.
    Recipe "lpzero": all block weights. Recipe "tfnas": the token-mixing
    operation's weights (ElectraLayer.operation.operation in the original).
    """
    return _sum_abs_weight_times_grad(ctx, part="mixer", min_rows=HEAD_IMPORTANCE_MIN_ROWS)


def grad_norm(ctx: ProxyContext) -> float:
    """GradNorm: sum over block weights of the Frobenius norm of dL/dW."""
    run = shared_pass(ctx)
    return sum(float(run.grad(s).double().norm()) for s in run.sites.weights)


def synaptic_diversity(ctx: ProxyContext) -> float:
    """Synaptic diversity: sum of ||W||_nuc * ||dL/dW||_nuc over block weights.

    Recipe "lpzero": all block weights. Recipe "tfnas": all but the
    feed-forward weights (ElectraLayer.operation in the original: the token
    mixer and its output projection).
    """
    run = shared_pass(ctx)
    total = 0.0
    for s in _recipe_weights(ctx, ctx.model(), run.sites, "non_ffn"):
        total += float(_nuclear_norm(s.param.detach()) * _nuclear_norm(run.grad(s)))
    return total


def _nuclear_norm(t: torch.Tensor) -> torch.Tensor:
    """Sum of singular values of `t` as a matrix, in float64.

    From the eigenvalues of the smaller Gram matrix (sigma_i = sqrt(lambda_i)):
    several times faster than an SVD of a wide matrix, and equal to
    `matrix_norm(t, "nuc")` to about 1e-9 relative (tested).
    """
    m = _as_matrix(t).double()
    gram = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
    return torch.linalg.eigvalsh(gram).clamp_min(0).sqrt().sum()


def eznas(ctx: ProxyContext) -> float:
    """EZNAS: sum over block weights of sigmoid(log|det(sign(G) sign(G)^T)|).

    G is dL/dW with rows as stored (GPT-2 Conv1D: input features). sign(G)
    sign(G)^T is an integer matrix, so its determinant is 0 or at least 1: a
    layer adds 0 (singular, e.g. more rows than columns) or sigmoid(log|det|),
    in practice 1, and the score is close to a count of layers. Computed in
    float64; the original's float32 turns some exactly singular matrices (on
    LTS GPT-2 often attn.c_proj's) into rounding noise that counts up to 1, so
    its scores run a few units higher (ours still rank 24 LTS architectures
    like the reference scores, Spearman 0.99). The original's final Frobenius norm of a scalar is its
    absolute value, a no-op here.
    """
    run = shared_pass(ctx)
    total = 0.0
    for s in run.sites.weights:
        g = run.weight_grads[id(s.param)]
        if g is None:
            continue  # as the original: layers without a gradient add nothing
        signs = torch.sign(_as_matrix(g)).double()
        if signs.shape[0] > signs.shape[1]:
            continue  # rank <= columns < rows: det is exactly 0 and sigmoid(log 0) adds 0
        _, logabsdet = torch.linalg.slogdet(signs @ signs.T)
        total += float(torch.sigmoid(logabsdet))
    return total


def grasp(ctx: ProxyContext) -> float:
    """GraSP: -sum over block weights of W * (H g), g = dL/dW, H = d2L/dW2.

    Needs a second-order backward pass (about 3x the cost of one backward).
    The original runs two forward passes (one for g, one for the graph of the
    Hessian-vector product); this uses one forward pass for both, which is the
    same computation when the forward pass is deterministic (it is: fixed seed).
    Higher scores mean worse architectures in the paper's results.
    """
    model = ctx.model()
    sites = ctx.benchmark.zc_sites(model)
    weights = [s.param for s in sites.weights]
    _clear_grads(model)
    grads = torch.autograd.grad(_forward_loss(ctx, model), weights, create_graph=True, allow_unused=True)
    used = [(w, g) for w, g in zip(weights, grads) if g is not None]
    # z = g_const . g(W); dz/dW = H g_const.
    z = sum((g.detach() * g).sum() for _, g in used)
    hessian_grads = torch.autograd.grad(z, [w for w, _ in used], allow_unused=True)
    return -sum(
        float((w.detach().double() * hg.double()).sum())
        for (w, _), hg in zip(used, hessian_grads)
        if hg is not None
    )


def fisher(ctx: ProxyContext) -> float:
    """Fisher: per output channel k of each linear layer, 0.5 * mean_n (a_nk * dL/da_nk)^2.

    a is the layer's output with all leading axes flattened into n (tokens of all
    samples). As in the original, each channel's value is broadcast over a row
    of the stored weight (`weight.shape[1:]`) before summing, so a layer adds
    sum_k value_k * prod(weight.shape[1:]); for Conv1D ([in, out]) that factor is
    the output width.
    """
    run = shared_pass(ctx)
    total = 0.0
    for (_, weight), outs, grads in zip(run.layers, run.layer_outputs, run.layer_output_grads):
        per_channel = 0.0
        for out, g in zip(outs, grads):
            if g is None:
                continue
            a = out.reshape(-1, out.shape[-1]).double()
            g = g.reshape(-1, out.shape[-1]).double()
            per_channel = per_channel + (a * g).pow(2).mean(0).mul(0.5)
        total += float(torch.as_tensor(per_channel).sum()) * (weight.numel() // weight.shape[0])
    return total


# --------------------------------------------------------------------------
# Synflow family (own model: weights are replaced by their absolute values)
# --------------------------------------------------------------------------


def _synflow_grads(ctx: ProxyContext) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(|W|, dR/dW) per block weight of a fresh float64 model with |parameters| (shared by the family)."""
    return ctx.shared("synflow network", lambda: _compute_synflow_grads(ctx))


def _compute_synflow_grads(ctx: ProxyContext) -> list[tuple[torch.Tensor, torch.Tensor]]:
    model = ctx.fresh_model().double()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    _forward_loss(ctx, model).backward()
    return [(s.param.detach(), _grad_of(s)) for s in ctx.benchmark.zc_sites(model).weights]


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


# --------------------------------------------------------------------------
# Forward-only proxies on activations and attention maps
# --------------------------------------------------------------------------


def activation_distance(ctx: ProxyContext) -> float:
    """Activation distance: token-pair sign agreement of hidden features.

    For each recorded map, take the first sample's [tokens, features] slice,
    x = (map > 0), and add the sum of all entries of x x^T + (1 - x)(1 - x)^T:
    over all token pairs, the number of features on which the two tokens agree
    in sign. Computed as sum_c (n1_c^2 + n0_c^2), n1_c / n0_c = tokens with
    feature c positive / not, which is the same number.
    Recipe "lpzero": the outputs of every block linear layer. Recipe "tfnas":
    the feed-forward activation outputs (A), once per call. The FlexiBERT
    reference CSV counts each activation map 4 to 1,140 times over (its
    hooks piled up on an activation module shared across models, by a factor
    that grows along the evaluation order); its "Activation Distance Normalized"
    column (the mean per map) is free of that.
    """
    run = shared_pass(ctx)
    records = run.activations if ctx.recipe == "tfnas" else run.layer_outputs
    total = 0.0
    for rec in records:
        for out in rec:
            x = (out[0].reshape(out.shape[1], -1) > 0).double()
            positive = x.sum(0)
            total += float((positive.pow(2) + (x.shape[0] - positive).pow(2)).sum())
    return total


def _mean_max_over_dim1(tensors: Iterable[torch.Tensor]) -> float:
    return sum(float(t.double().max(dim=1).values.mean()) for t in tensors)


def attention_confidence(ctx: ProxyContext) -> float:
    """Attention (head) confidence: sum over linear-layer outputs of mean(max over dim 1).

    For a [batch, tokens, features] output, dim 1 is the token axis.
    Recipe "lpzero": every block linear layer (LPZero's `head_confidence` is the
    same code). Recipe "tfnas" ("Head Confidence"): the token mixer's linear
    layers; the original hooks only its query/key/value/input/weight projections,
    so FlexiBERT's dynamic-convolution layers also count conv_kernel_layer and
    conv_out_layer here. The originals also ran a backward pass, which cannot
    change these values; it is skipped.
    """
    run, model = shared_pass(ctx), ctx.model()
    mixer = _linear_layers(model, _recipe_weights(ctx, model, run.sites, "mixer"))
    return _mean_max_over_dim1(run.outputs_of([layer for layer, _ in mixer]))


def softmax_confidence(ctx: ProxyContext) -> float:
    """Softmax confidence: sum over attention maps S of mean(max over dim 1).

    For [batch, heads, query, key] maps, dim 1 is the head axis (as in
    training-free-nas, "Head Softmax Confidence"; LPZero's version never
    registers its hooks before the forward pass, so it has no usable definition).
    Blocks without a softmax site add nothing. Recipe "tfnas" reads what the
    original's hook saw where the benchmark names it (`ZCSites.tfnas_softmax`):
    in FlexiBERT also the softmax over head_dim of each Fourier/cosine head, which
    the original computes and never uses, and not the dynamic convolution's kernel
    softmax (a functional call no hook sees).
    """
    run = shared_pass(ctx)
    if ctx.recipe != "tfnas" or not run.sites.tfnas_softmax:
        return _mean_max_over_dim1(out for rec in run.softmax for out in rec)
    maps = []
    for site, rec in zip(run.sites.tfnas_softmax, run.tfnas_softmax):
        for out in rec:
            if site.softmax_heads:
                b, t, width = out.shape
                heads = out.double().reshape(b, t, site.softmax_heads, width // site.softmax_heads).transpose(1, 2)
                out = torch.softmax(heads, dim=-1)
            maps.append(out)
    return _mean_max_over_dim1(maps)


def jacobian_cosine(ctx: ProxyContext) -> float:
    """Jacobian cosine: 1 - mean over feature pairs of |cos|^(1/20), halved.

    P[t, d] is the gradient of the position-embedding table, as in both originals
    (LPZero GPT-2: wpe; training-free-nas: ELECTRA's 128-wide position_embeddings),
    when the benchmark's sites name one. Otherwise P is J = dL/d(embedding site
    output) summed over the batch, which is the same matrix for positions 0..T-1
    whenever a position embedding is added to the site's output with nothing in
    between. Positions beyond T have zero gradient and change no cosine.
    With D features and c_ij the cosine between feature columns i and j of P:
    score = 1 - sum_{i != j} |c_ij|^(1/20) / (2 D (D - 1)).
    A feature with an all-zero column gets cosine 0 (the original gives NaN).
    """
    run = shared_pass(ctx)
    if run.position_grad is not None:
        per_position = run.position_grad  # [positions, features]
    else:
        per_position = sum(j.sum(0) for j in run.embedding_grads)  # [tokens, features]
    columns = per_position.double().T
    unit = columns / columns.norm(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    cosines = unit @ unit.T
    d = cosines.shape[0]
    off_diagonal = ~torch.eye(d, dtype=torch.bool, device=cosines.device)
    summed = cosines[off_diagonal].abs().pow(1.0 / 20).sum() / 2
    return float(1 - summed / (d * d - d))


# --------------------------------------------------------------------------
# Size proxies
# --------------------------------------------------------------------------


def num_params(ctx: ProxyContext) -> float:
    """Number of parameters of the whole model (tied weights counted once)."""
    return float(sum(p.numel() for p in ctx.model().parameters()))


def _is_norm_layer(module: nn.Module) -> bool:
    name = type(module).__name__
    return name.endswith("LayerNorm") or name.endswith("RMSNorm")


def decoder_params(ctx: ProxyContext) -> float:
    """Non-embedding ("decoder") parameters.

    `benchmark.count_params(arch)["nonembedding"]` when the benchmark reports it
    (LPZero's "nparams" is attention + FFN from params_summary.yaml; Archai's
    nonembedding adds all LayerNorms). Otherwise: all parameters of the modules
    owning the weight sites (weights and biases) plus every LayerNorm/RMSNorm
    outside the embedding site, which is Archai's count for GPT-2 layouts.
    """
    counts = ctx.benchmark.count_params(ctx.arch_id)
    if "nonembedding" in counts:
        return float(counts["nonembedding"])
    model = ctx.model()
    sites = ctx.benchmark.zc_sites(model)
    embedding_modules = {id(m) for m in sites.embedding.modules()}
    modules = [layer for layer, _ in _linear_layers(model, sites.weights)] + [
        m for m in model.modules() if _is_norm_layer(m) and id(m) not in embedding_modules
    ]
    params = {id(p): p for m in modules for p in m.parameters(recurse=False)}
    return float(sum(p.numel() for p in params.values()))


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    """A named baseline proxy.

    `expressible` is the proxy as a per-layer formula over the six proxy inputs
    (A, J, G, H, W, S) and the primitive ops (the per-layer values summed over
    layers) when it lies in LPZero's search space, else None; `doc` ends with a
    "Search space:" line giving the reason or the caveats.
    """

    name: str
    fn: Callable[[ProxyContext], float]
    doc: str
    expressible: str | None

    def __call__(self, ctx: ProxyContext) -> float:
        return float(self.fn(ctx))


def six_inputs(ctx: ProxyContext):
    """The six inputs (A, J, G, H, W, S) of the shared model, extracted once per context."""
    from benchmarks.inputs import extract_inputs

    return ctx.shared("six inputs", lambda: extract_inputs(ctx.benchmark, ctx.model(), ctx.inputs()))


def _tree_score(ctx: ProxyContext, tree_text: str) -> float:
    """A proxy tree of our search space, scored exactly on the full inputs."""
    from deap import gp

    from primitives import INPUT_SYMBOLS

    from .cache import full_weighted
    from .experiment import parse_tree, tree_inputs

    tree, pset = parse_tree(tree_text)
    func = gp.compile(tree, pset)
    inputs = full_weighted(six_inputs(ctx), ctx.device, tree_inputs(tree))
    with torch.no_grad():
        return float(func(*[inputs[s] for s in INPUT_SYMBOLS])[0])


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
    return _tree_score(ctx, LPZERO_FLEXIBERT_TREE)


def lpzero_llama(ctx: ProxyContext) -> float:
    """LPZero's proxy found on LLaMA: sum over weights of ||W||_1^2 + mean(softmax(W)^(1/2))."""
    return _tree_score(ctx, LPZERO_LLAMA_TREE)


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


def _baseline(fn: Callable[[ProxyContext], float], expressible: str | None, note: str) -> Baseline:
    doc = inspect.getdoc(fn) or ""
    where = f"{expressible}; {note}" if expressible else f"not expressible: {note}"
    return Baseline(fn.__name__, fn, f"{doc}\n\nSearch space: {where}", expressible)


BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in (
        _baseline(synaptic_diversity, None, "the nuclear norm is not a primitive."),
        _baseline(synaptic_saliency, "l1_norm(mul(W, G))", 'recipe "lpzero" only (all block weights).'),
        _baseline(head_importance, None, "no primitive selects layers by their number of rows."),
        _baseline(
            activation_distance,
            None,
            'needs a token-pair kernel; recipe "lpzero" reads linear-layer outputs, not an input.',
        ),
        _baseline(jacobian_cosine, None, "pairwise cosines between features are not primitives."),
        _baseline(snip, "l1_norm(mul(W, G))", "all block weights, whatever the recipe."),
        _baseline(grasp, None, "needs a Hessian-gradient product."),
        _baseline(grad_norm, "frobenius_norm(G)", "exactly (the norm is taken per weight matrix)."),
        _baseline(fisher, None, "needs linear-layer outputs and their gradients."),
        _baseline(synflow, None, "needs a second network with absolute-valued weights."),
        _baseline(logsynflow, None, "needs a second network with absolute-valued weights."),
        _baseline(num_params, None, "a parameter count, not a function of the inputs' values."),
        _baseline(decoder_params, None, "a parameter count, not a function of the inputs' values."),
        _baseline(
            attention_confidence,
            None,
            "needs a max over tokens, and it reads linear-layer outputs, not one of the six inputs.",
        ),
        _baseline(softmax_confidence, None, "over S, but a max over the head axis is not a primitive."),
        _baseline(eznas, None, "sign and log-determinant are not primitives."),
        _baseline(lpzero_gpt2, None, "its z-score normalisation is not one of the 20 primitives."),
        _baseline(lpzero_flexibert, LPZERO_FLEXIBERT_TREE, "exactly, as a typed tree."),
        _baseline(lpzero_llama, LPZERO_LLAMA_TREE, "exactly, as a typed tree."),
    )
}


def compute_baseline(name: str, ctx: ProxyContext) -> float:
    """The score of baseline `name` on `ctx` (KeyError lists the known names)."""
    try:
        baseline = BASELINES[name]
    except KeyError:
        raise KeyError(f"unknown baseline {name!r} (known: {', '.join(BASELINES)})") from None
    return baseline(ctx)
