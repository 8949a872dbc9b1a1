"""Per-weight gradient proxies stream their gradients above the size limit: same values, one gradient held at a time,
one backward pass for all of them, and the model left as it was."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from fake_benchmark import TinyGPT2Benchmark
from lpzero.benchmarks.base import Batch, WeightSite, ZCSites
from lpzero.benchmarks.flexibert.benchmark import FlexiBERTBenchmark
from lpzero.benchmarks.flexibert.model import FlexiBERTConfig, LayerSpec
from lpzero.proxies import HAND_DESIGNED, ProxyContext, ProxyRegistry, hand_designed, score_proxies
from lpzero.proxies import context as context_module
from lpzero.proxies.context import SHARED_PASS
from lpzero.proxies.per_weight import PerWeight
from test_streaming_inputs import TinyLlamaBenchmark

PER_WEIGHT = ["snip", "synaptic_saliency", "head_importance", "grad_norm", "synaptic_diversity", "eznas"]


class TinyFlexiBERT(FlexiBERTBenchmark):
    """One small FlexiBERT (hidden 128: every operation type, mixer weights of 128 rows) and random batches:
    the "tfnas" recipe's parts, without the benchmark's data."""

    def __init__(self) -> None:
        self.hidden_size_compat = False
        layers = (LayerSpec("SA", "SDP", 4, 256, 1), LayerSpec("LT", "DFT", 4, 192, 2), LayerSpec("DSC", 5, 4, 256, 1))
        self._configs = {"mixed": FlexiBERTConfig(128, layers)}

    def ids(self) -> list[str]:
        return list(self._configs)

    def make_batch(self, seed: int, batch_size: int | None = None, seq_len: int | None = None) -> Batch:
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(5, 1000, (2, 16), generator=g)
        mask = torch.ones_like(ids)
        mask[1, 12:] = 0  # padding, as real batches have
        return Batch(ids, mask)


class SharedWeightBenchmark(TinyGPT2Benchmark):
    """A parameter read by two weight sites, and a weight of the model that no gradient reaches."""

    def build_model(self, arch_id: str, seed: int, device: str | torch.device = "cpu") -> nn.Module:
        model = super().build_model(arch_id, seed, device)
        model.unused = nn.Linear(6, 4, bias=False).to(device)  # stored [4, 6]: eznas reads it, and skips it
        return model

    def zc_sites(self, model: nn.Module) -> ZCSites:
        sites = super().zc_sites(model)
        return ZCSites(sites.embedding, sites.activations, sites.heads, sites.softmax,
                       sites.weights + [sites.weights[0], WeightSite(9, "unused", model.unused.weight)])


class CountingLlama(TinyLlamaBenchmark):
    """The tiny LLaMA benchmark counting how often its objective is evaluated."""

    calls = 0

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        CountingLlama.calls += 1
        return super().loss(model, batch)


#: (benchmark, architecture, recipe): two GPT-2 recipes, LLaMA, FlexiBERT (its default recipe, "tfnas"),
#: and a parameter in two weight sites beside one no gradient reaches
CASES = [(TinyGPT2Benchmark, "tiny4", "lpzero"), (TinyGPT2Benchmark, "tiny4", "tfnas"),
         (TinyLlamaBenchmark, "wide", "lpzero"), (TinyFlexiBERT, "mixed", None),
         (SharedWeightBenchmark, "tiny2", "lpzero")]


def _context(case: tuple) -> ProxyContext:
    bench_class, arch, recipe = case
    bench = bench_class()
    return ProxyContext(bench, arch, 0, bench.make_batch(0, 2, 24), recipe=recipe)


@pytest.fixture
def stream_everything(monkeypatch):
    """Every model counts as large: the per-weight proxies stream."""
    monkeypatch.setattr(context_module, "STREAM_ABOVE_BYTES", 0)


@pytest.mark.parametrize("case", CASES, ids=[f"{a}-{r}" for _, a, r in CASES])
def test_streamed_values_equal_the_shared_pass_values_exactly(case, monkeypatch):
    proxies = [HAND_DESIGNED[n] for n in PER_WEIGHT]
    shared_ctx = _context(case)
    shared = {n: r.value for n, r in score_proxies(proxies, shared_ctx, strict=True).items()}
    assert shared_ctx.has_shared(SHARED_PASS)
    monkeypatch.setattr(context_module, "STREAM_ABOVE_BYTES", 0)
    streamed_ctx = _context(case)
    streamed = {n: r.value for n, r in score_proxies(proxies, streamed_ctx, strict=True).items()}
    assert not streamed_ctx.has_shared(SHARED_PASS)
    assert streamed == shared
    if case[0] is not SharedWeightBenchmark:
        assert all(v != 0 for n, v in shared.items() if n != "head_importance" or case[2] != "tfnas")


def test_the_flexibert_recipe_parts_are_what_the_proxies_read():
    ctx = _context(CASES[3])
    assert ctx.recipe == "tfnas"
    values = {n: HAND_DESIGNED[n](ctx) for n in PER_WEIGHT}
    # the feed-forward (saliency), the mixer (head importance) and the rest (diversity) are strict parts
    assert 0 < values["synaptic_saliency"] < values["snip"] and 0 < values["head_importance"] < values["snip"]


def test_one_block_gradient_is_held_at_a_time_and_the_model_is_left_as_it_was(stream_everything):
    ctx = _context(CASES[2])
    model = ctx.model()
    sites = ctx.benchmark.zc_sites(model)
    weight_ids = {id(s.param) for s in sites.weights}
    others = [p for p in model.parameters() if id(p) not in weight_ids]
    model.model.norm.weight.requires_grad_(False)  # a parameter frozen already stays frozen
    requires = [p.requires_grad for p in model.parameters()]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    held, frozen_during = [], []

    def watch(weight: torch.Tensor, grad: torch.Tensor) -> float:
        held.append(sum(p.grad is not None for p in model.parameters()))
        frozen_during.append(not any(p.requires_grad for p in others))
        return float(grad.double().sum())

    registry = ProxyRegistry()
    watched = hand_designed("watch", registry=registry, per_weight=PerWeight())(watch)
    value = score_proxies([registry["watch"], HAND_DESIGNED["grad_norm"]], ctx, strict=True)["watch"].value
    assert len(held) == len(weight_ids) and max(held) == 1  # its own gradient: every earlier one is freed
    assert all(frozen_during)  # no embedding, norm or head gradient is accumulated either
    assert value == sum(float(g.double().sum()) for g in _plain_gradients(ctx, sites))
    assert watched.per_weight.term is watch
    assert [p.requires_grad for p in model.parameters()] == requires
    assert all(p.grad is None and not p._post_accumulate_grad_hooks for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    for module in model.modules():
        assert not module._forward_hooks and not module._backward_hooks


def _plain_gradients(ctx: ProxyContext, sites) -> list[torch.Tensor]:
    """dL/dW of each weight site from one plain `torch.autograd.grad` of the same objective."""
    model = ctx.model()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx.seed)
        loss = ctx.benchmark.loss(model, ctx.inputs())
    params = [p for p in model.parameters() if p.requires_grad]
    grads = dict(zip(map(id, params), torch.autograd.grad(loss, params)))
    return [grads[id(s.param)] for s in sites.weights]


def test_every_per_weight_proxy_of_a_context_shares_one_streamed_backward_pass(stream_everything):
    ctx = _context((CountingLlama, "wide", "lpzero"))
    CountingLlama.calls = 0
    results = score_proxies([HAND_DESIGNED[n] for n in PER_WEIGHT], ctx, strict=True)
    assert CountingLlama.calls == 1
    streamed = [n for n in ctx._pass_seconds if n.startswith("streamed gradients")]
    assert streamed == [f"streamed gradients ({', '.join(sorted(PER_WEIGHT))})"]
    passes = ctx._pass_seconds["model"] + ctx._pass_seconds[streamed[0]]
    # every reader is charged the one streamed pass, whichever ran it
    assert all(r.pass_seconds == pytest.approx(passes) and r.seconds >= passes for r in results.values())
    # a context holding the pass reads it again; one holding the full shared pass reads that instead
    assert HAND_DESIGNED["eznas"](ctx) == results["eznas"].value and CountingLlama.calls == 1
    fresh = _context((CountingLlama, "wide", "lpzero"))
    HAND_DESIGNED["fisher"](fresh)
    assert HAND_DESIGNED["snip"](fresh) == results["snip"].value and CountingLlama.calls == 2


def test_small_models_keep_the_shared_pass():
    ctx = _context(CASES[0])
    score_proxies([HAND_DESIGNED[n] for n in PER_WEIGHT], ctx, strict=True)
    assert ctx.has_shared(SHARED_PASS) and not any(n.startswith("streamed") for n in ctx._pass_seconds)
    assert ctx.declared_per_weight == {HAND_DESIGNED[n].per_weight for n in PER_WEIGHT}
    assert HAND_DESIGNED["fisher"].per_weight is None and HAND_DESIGNED["grasp"].per_weight is None
