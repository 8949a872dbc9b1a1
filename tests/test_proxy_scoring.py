"""The hand-designed proxies' registry (`@hand_designed`) and the one scoring call (`score_proxies`)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fake_benchmark import TinyGPT2Benchmark
from lpzero.benchmarks.base import Batch
from lpzero.errors import LPZeroError
from lpzero.proxies import HAND_DESIGNED, ProxyContext

ARCH = "tiny4"
SEED = 3


class CountingLossBenchmark(TinyGPT2Benchmark):
    """The fake benchmark counting how often its objective is evaluated."""

    calls = 0

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        CountingLossBenchmark.calls += 1
        return super().loss(model, batch)


@pytest.fixture(scope="module")
def bench() -> TinyGPT2Benchmark:
    return TinyGPT2Benchmark()


def test_registry_lists_the_built_in_proxies_in_table_order() -> None:
    from lpzero.proxies import HAND_DESIGNED, TABLE_ORDER, HandDesigned, Proxy

    assert HAND_DESIGNED is HAND_DESIGNED
    assert list(HAND_DESIGNED) == list(TABLE_ORDER) == HAND_DESIGNED.names()[:len(TABLE_ORDER)]
    assert [name for name, _ in HAND_DESIGNED.items()] == list(TABLE_ORDER)
    assert all(isinstance(p, HandDesigned) and isinstance(p, Proxy) for p in HAND_DESIGNED.values())
    assert [n for n in TABLE_ORDER if HAND_DESIGNED[n].pass_free] == ["num_params", "decoder_params"]


def test_a_name_registered_twice_is_refused() -> None:
    from lpzero.proxies import HAND_DESIGNED, ProxyRegistry, hand_designed

    with pytest.raises(ValueError, match="'grad_norm' is registered twice"):
        hand_designed("grad_norm")(lambda ctx: 0.0)
    assert HAND_DESIGNED["grad_norm"].fn.__module__ == "lpzero.proxies.gradient"  # the first registration stands
    registry = ProxyRegistry()

    @hand_designed("mine", note="a test's own proxy.", registry=registry)
    def mine(ctx: ProxyContext) -> float:
        """A test's proxy."""
        return 1.0

    assert mine(None) == 1.0  # the decorator returns the function as it was
    with pytest.raises(ValueError, match="'mine' is registered twice"):
        hand_designed("mine", registry=registry)(mine)
    assert registry.names() == ["mine"] and "mine" not in HAND_DESIGNED
    assert registry["mine"].doc == "A test's proxy.\n\nSearch space: not expressible: a test's own proxy."


def _three_halves_of_the_parameters(ctx: ProxyContext) -> float:
    """1.5 x num_params: a proxy a user names as module:ATTR."""
    return 1.5 * sum(p.numel() for p in ctx.model().parameters())


def test_a_registered_proxy_and_a_module_attr_proxy_are_scored_like_the_built_in_ones(bench) -> None:
    from lpzero.proxies import HAND_DESIGNED, HandDesigned, ProxyRegistry, hand_designed, score_proxies

    registry = ProxyRegistry()
    hand_designed("doubled", registry=registry)(lambda ctx: 2 * HAND_DESIGNED["num_params"].fn(ctx))
    by_path = HAND_DESIGNED.get(f"{__file__}:_three_halves_of_the_parameters")
    assert isinstance(by_path, HandDesigned) and by_path.name == "_three_halves_of_the_parameters"
    with pytest.raises(LPZeroError, match="has no attribute 'nosuch'"):
        HAND_DESIGNED.get(f"{__file__}:nosuch")
    ctx = ProxyContext.create(bench, ARCH, SEED)
    results = score_proxies([registry["doubled"], by_path, HAND_DESIGNED["num_params"]], ctx)
    assert list(results) == ["doubled", "_three_halves_of_the_parameters", "num_params"]
    count = results["num_params"].value
    assert results["doubled"].value == 2 * count and results["_three_halves_of_the_parameters"].value == 1.5 * count
    assert all(r.valid and r.error is None for r in results.values())


def test_score_proxies_gives_each_baseline_its_own_value(bench) -> None:
    from lpzero.proxies import score_proxies

    shared = ProxyContext.create(bench, ARCH, SEED)
    values = {name: baseline(shared) for name, baseline in HAND_DESIGNED.items()}
    results = score_proxies(list(HAND_DESIGNED.values()), ProxyContext.create(bench, ARCH, SEED))
    assert {n: r.value for n, r in results.items()} == values  # bitwise: the same calls in the same order
    assert all(r.seconds >= r.pass_seconds >= 0 for r in results.values())


def test_score_proxies_runs_the_shared_pass_once_for_every_gradient_proxy() -> None:
    from lpzero.proxies import score_proxies

    gradient = [HAND_DESIGNED[n] for n in ("snip", "grad_norm", "fisher", "eznas", "synaptic_diversity")]
    ctx = ProxyContext.create(CountingLossBenchmark(), ARCH, SEED)
    CountingLossBenchmark.calls = 0
    results = score_proxies(gradient, ctx)
    assert CountingLossBenchmark.calls == 1
    shared = ctx._pass_seconds["model"] + ctx._pass_seconds["forward/backward"]
    # every reader is charged the shared pass, whichever ran it
    assert all(r.pass_seconds == pytest.approx(shared) and r.seconds >= shared for r in results.values())


def test_score_proxies_extracts_the_inputs_of_found_and_paper_proxies_once() -> None:
    from lpzero.proxies import score_proxies
    from lpzero.proxies.found_proxy import PRIMITIVE_SET_VERSION, FoundProxy

    only_w = FoundProxy.from_best({"tree": "layer_sum__Lw(l1__Tw(W))", "primitive_set_version": PRIMITIVE_SET_VERSION})
    assert only_w.inputs_needed == {"W"}
    ctx = ProxyContext.create(CountingLossBenchmark(), ARCH, SEED)
    CountingLossBenchmark.calls = 0
    # the found proxy runs first: it extracts what the paper proxy reads too (all six)
    results = score_proxies([only_w, HAND_DESIGNED["lpzero_gpt2"]], ctx)
    assert CountingLossBenchmark.calls == 1
    alone = ProxyContext.create(CountingLossBenchmark(), ARCH, SEED)
    assert results[only_w.name].value == score_proxies([only_w], alone)[only_w.name].value


def test_score_proxies_reports_a_failing_or_non_finite_proxy_and_scores_the_rest(bench) -> None:
    from lpzero.proxies import HandDesigned, score_proxies

    def broken(ctx: ProxyContext) -> float:
        raise RuntimeError("no such layer")

    proxies = [HandDesigned.of(broken), HandDesigned.of(lambda ctx: math.inf, name="infinite"), HAND_DESIGNED["snip"]]
    results = score_proxies(proxies, ProxyContext.create(bench, ARCH, SEED))
    assert results["broken"].error == "RuntimeError: no such layer" and math.isnan(results["broken"].value)
    assert results["infinite"].value == math.inf and results["infinite"].error == "non-finite value inf"
    assert not results["broken"].valid and not results["infinite"].valid
    assert results["snip"].valid and results["snip"].value == HAND_DESIGNED["snip"](ProxyContext.create(bench, ARCH, SEED))
    with pytest.raises(RuntimeError, match="no such layer"):
        score_proxies(proxies, ProxyContext.create(bench, ARCH, SEED), strict=True)
    with pytest.raises(ValueError, match="given twice: snip"):
        score_proxies([HAND_DESIGNED["snip"], HAND_DESIGNED["snip"]], ProxyContext.create(bench, ARCH, SEED))


def test_a_hand_designed_proxy_negated_and_through_a_pickle(bench) -> None:
    import pickle

    grad_norm = HAND_DESIGNED["grad_norm"]
    negated = pickle.loads(pickle.dumps(grad_norm.oriented(-1)))
    assert negated.orientation == -1 and negated.fn is grad_norm.fn and grad_norm.orientation == 1
    ctx = ProxyContext.create(bench, ARCH, SEED)
    assert negated.score(ctx) == -grad_norm.score(ctx) == -grad_norm(ctx)
    with pytest.raises(ValueError, match="orientation must be 1 or -1"):
        grad_norm.oriented(0)
