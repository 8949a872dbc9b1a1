"""Tests of the baseline zero-cost proxies on the tiny fake GPT-2 benchmark."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from lpzero.benchmarks.base import Batch
from lpzero.errors import LPZeroError
from fake_benchmark import TinyGPT2Benchmark
from lpzero.proxies import HAND_DESIGNED, ProxyContext
from lpzero.proxies.context import recipe_weights as _recipe_weights

ARCH = "tiny4"  # 3 layers, n_embd 32: every proxy has several layers to sum over
SEED = 3
EXPECTED_NAMES = {
    "synaptic_diversity", "synaptic_saliency", "head_importance", "activation_distance",
    "jacobian_cosine", "snip", "grasp", "grad_norm", "fisher", "synflow", "logsynflow",
    "num_params", "decoder_params", "attention_confidence", "softmax_confidence", "eznas",
    "lpzero_gpt2", "lpzero_flexibert", "lpzero_llama",
}


class DoubledLossBenchmark(TinyGPT2Benchmark):
    """The fake benchmark with its objective multiplied by 2."""

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return 2 * super().loss(model, batch)


class NoNonembeddingCountBenchmark(TinyGPT2Benchmark):
    """The fake benchmark without a "nonembedding" parameter count."""

    def count_params(self, arch_id: str) -> dict[str, int]:
        return {"total": super().count_params(arch_id)["total"]}


@pytest.fixture(scope="module")
def bench() -> TinyGPT2Benchmark:
    return TinyGPT2Benchmark()


@pytest.fixture(scope="module")
def shared_run(bench: TinyGPT2Benchmark) -> tuple[ProxyContext, dict[str, float]]:
    """Every baseline, in table order, on one context (so one shared model)."""
    ctx = ProxyContext.create(bench, ARCH, SEED)
    return ctx, {name: baseline(ctx) for name, baseline in HAND_DESIGNED.items()}


def _fresh(bench: TinyGPT2Benchmark, name: str, arch: str = ARCH, seed: int = SEED) -> float:
    return HAND_DESIGNED[name](ProxyContext.create(bench, arch, seed))


def _loss_and_grads(bench: TinyGPT2Benchmark, ctx: ProxyContext) -> nn.Module:
    """An independent model of ctx's architecture after one plain backward pass."""
    model = ctx.fresh_model()
    bench.loss(model, ctx.batch).backward()
    return model


# --- the table -------------------------------------------------------------


def test_table_lists_every_baseline_with_docs() -> None:
    assert set(HAND_DESIGNED) == EXPECTED_NAMES
    for name, baseline in HAND_DESIGNED.items():
        assert baseline.name == name
        assert baseline.doc
        if baseline.expressible is None:
            assert "Search space: not expressible" in baseline.doc


def test_every_expressible_baseline_is_a_tree_of_the_search_space(
    bench: TinyGPT2Benchmark, shared_run: tuple[ProxyContext, dict[str, float]]
) -> None:
    from lpzero.primitives import default_pset, parse_tree
    from lpzero.proxies import score_tree, six_inputs

    ctx, values = shared_run
    expressible = {n: b.expressible for n, b in HAND_DESIGNED.items() if b.expressible}
    assert {"snip", "grad_norm", "lpzero_flexibert"} <= set(expressible)
    for name, text in expressible.items():
        tree = parse_tree(text, default_pset())
        if name in ("snip", "grad_norm"):  # exactly the baseline, in float32
            assert score_tree(tree, six_inputs(ctx)) == pytest.approx(values[name], rel=1e-4), name


# --- every proxy: finite, deterministic, no state left behind ---------------


@pytest.mark.parametrize("name", sorted(EXPECTED_NAMES))
def test_finite_and_same_on_a_fresh_context(
    bench: TinyGPT2Benchmark, shared_run: tuple[ProxyContext, dict[str, float]], name: str
) -> None:
    # The fresh context runs this proxy alone; the shared one ran all proxies
    # before it on the same model, so equality also shows nothing leaked.
    _, values = shared_run
    assert isinstance(values[name], float)
    assert math.isfinite(values[name])
    assert _fresh(bench, name) == pytest.approx(values[name], rel=1e-9, abs=1e-15)


def test_shared_model_left_clean(shared_run: tuple[ProxyContext, dict[str, float]]) -> None:
    ctx, _ = shared_run
    model = ctx.model()
    assert all(p.grad is None for p in model.parameters())
    for module in model.modules():
        assert not module._forward_hooks
        assert not module._forward_pre_hooks
        assert not module._backward_hooks
        assert not module._backward_pre_hooks


def test_synflow_leaves_the_shared_model_unchanged(bench: TinyGPT2Benchmark) -> None:
    ctx = ProxyContext.create(bench, ARCH, SEED)
    before = {k: v.clone() for k, v in ctx.model().state_dict().items()}
    HAND_DESIGNED["synflow"](ctx)
    HAND_DESIGNED["logsynflow"](ctx)
    after = ctx.model().state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert next(ctx.model().parameters()).dtype == torch.float32


class CountingLossBenchmark(TinyGPT2Benchmark):
    """The fake benchmark counting how often its objective is evaluated."""

    calls = 0

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        CountingLossBenchmark.calls += 1
        return super().loss(model, batch)


def test_one_forward_pass_serves_every_first_order_proxy() -> None:
    first_order = ["synaptic_diversity", "synaptic_saliency", "head_importance", "activation_distance",
                   "jacobian_cosine", "snip", "grad_norm", "fisher", "attention_confidence",
                   "softmax_confidence", "eznas"]
    ctx = ProxyContext.create(CountingLossBenchmark(), ARCH, SEED)
    CountingLossBenchmark.calls = 0
    for name in first_order:
        HAND_DESIGNED[name](ctx)
    assert CountingLossBenchmark.calls == 1
    HAND_DESIGNED["synflow"](ctx)
    HAND_DESIGNED["logsynflow"](ctx)
    assert CountingLossBenchmark.calls == 2  # the synflow family shares its own network


def test_timed_charges_each_shared_pass_to_every_reader(bench: TinyGPT2Benchmark) -> None:
    ctx = ProxyContext.create(bench, ARCH, SEED)
    _, first = ctx.timed(HAND_DESIGNED["snip"].fn)
    _, second = ctx.timed(HAND_DESIGNED["grad_norm"].fn)  # reads the pass snip computed
    shared = ctx._pass_seconds["model"] + ctx._pass_seconds["forward/backward"]
    assert first >= shared and second >= shared


def test_nuclear_norm_from_the_gram_matrix_equals_the_svd() -> None:
    from lpzero.proxies.gradient import _nuclear_norm

    gen = torch.Generator().manual_seed(0)
    for shape in [(7, 40), (40, 7), (16, 16), (3, 4, 5)]:
        t = torch.randn(shape, generator=gen)
        expected = torch.linalg.matrix_norm(t.reshape(shape[0], -1).double(), "nuc")
        assert float(_nuclear_norm(t)) == pytest.approx(float(expected), rel=1e-9)


def test_seed_changes_gradient_proxies(bench: TinyGPT2Benchmark) -> None:
    for name in ("snip", "grad_norm", "fisher", "synflow"):
        assert _fresh(bench, name, seed=SEED) != _fresh(bench, name, seed=SEED + 1)


# --- size proxies ----------------------------------------------------------


def test_num_params_counts_every_parameter_and_ranks_by_size(bench: TinyGPT2Benchmark) -> None:
    counts = {}
    for arch in bench.ids():
        model = bench.build_model(arch, seed=0)
        counts[arch] = _fresh(bench, "num_params", arch=arch)
        assert counts[arch] == sum(p.numel() for p in model.parameters())
    by_score = sorted(bench.ids(), key=counts.get)
    by_total = sorted(bench.ids(), key=lambda a: bench.count_params(a)["total"])
    assert by_score == by_total
    assert len(set(counts.values())) == len(counts)


def test_decoder_params_with_and_without_a_benchmark_count(bench: TinyGPT2Benchmark) -> None:
    fallback = NoNonembeddingCountBenchmark()
    for arch in bench.ids():
        expected = bench.count_params(arch)["nonembedding"]
        assert _fresh(bench, "decoder_params", arch=arch) == expected
        # Weight sites + their biases + all LayerNorms is Archai's count for GPT-2.
        assert _fresh(fallback, "decoder_params", arch=arch) == expected


# --- agreement with independent computations --------------------------------


def test_snip_and_saliency_are_abs_weight_times_grad_over_all_conv1d(bench: TinyGPT2Benchmark) -> None:
    ctx = ProxyContext.create(bench, ARCH, SEED)
    model = _loss_and_grads(bench, ctx)
    conv1d = [m for m in model.modules() if isinstance(m, Conv1D)]
    expected = sum(float((m.weight.detach() * m.weight.grad).abs().sum()) for m in conv1d)
    assert HAND_DESIGNED["snip"](ctx) == pytest.approx(expected, rel=1e-6)
    assert HAND_DESIGNED["synaptic_saliency"](ctx) == pytest.approx(expected, rel=1e-6)


def test_head_importance_keeps_only_weights_with_128_rows(bench: TinyGPT2Benchmark) -> None:
    # n_embd = 32 < 128, so of each block only mlp.c_proj ([n_inner, n_embd]) counts.
    ctx = ProxyContext.create(bench, ARCH, SEED)
    model = _loss_and_grads(bench, ctx)
    w = [b.mlp.c_proj.weight for b in model.transformer.h]
    expected = sum(float((p.detach() * p.grad).abs().sum()) for p in w)
    value = HAND_DESIGNED["head_importance"](ctx)
    assert value == pytest.approx(expected, rel=1e-6)
    assert 0 < value < HAND_DESIGNED["snip"](ctx)


def test_grad_norm_is_sum_of_frobenius_norms(bench: TinyGPT2Benchmark) -> None:
    ctx = ProxyContext.create(bench, ARCH, SEED)
    model = _loss_and_grads(bench, ctx)
    expected = sum(float(m.weight.grad.norm()) for m in model.modules() if isinstance(m, Conv1D))
    assert HAND_DESIGNED["grad_norm"](ctx) == pytest.approx(expected, rel=1e-6)


def test_jacobian_cosine_matches_the_position_embedding_gradient_formula(bench: TinyGPT2Benchmark) -> None:
    # The originals' recipe: gradient of the position-embedding table, cosine
    # between its feature columns, diagonal excluded, 1/20 power, halved.
    ctx = ProxyContext.create(bench, ARCH, SEED)
    model = _loss_and_grads(bench, ctx)
    jacob = model.transformer.wpe.weight.grad.numpy().astype(np.float64).T  # [features, positions]
    normed = jacob / np.linalg.norm(jacob, axis=1)[:, None]
    cosines = normed @ normed.T - np.identity(normed.shape[0])
    np.fill_diagonal(cosines, 0.0)
    summed = np.sum(np.abs(cosines) ** (1 / 20)) / 2
    expected = 1 - summed / (cosines.shape[0] ** 2 - cosines.shape[0])
    value = HAND_DESIGNED["jacobian_cosine"](ctx)
    assert value == pytest.approx(expected, rel=1e-9)
    assert 0.5 <= value <= 1.0


class NoPositionTableBenchmark(TinyGPT2Benchmark):
    """The fake benchmark without a declared position-embedding table."""

    def zc_sites(self, model: nn.Module):
        return dataclasses.replace(super().zc_sites(model), position_embedding=None)


def test_jacobian_cosine_without_a_position_table_reads_the_embedding_site(bench: TinyGPT2Benchmark) -> None:
    # The fake's embedding site sees token + position embedding, so dL/d(site) summed
    # over the batch is the position table's gradient: the same score.
    fallback = HAND_DESIGNED["jacobian_cosine"](ProxyContext.create(NoPositionTableBenchmark(), ARCH, SEED))
    assert fallback == pytest.approx(_fresh(bench, "jacobian_cosine"), rel=1e-6)


def _token_kernel(bench: TinyGPT2Benchmark, ctx: ProxyContext, model: nn.Module, modules: list[nn.Module]) -> float:
    """Activation distance by its definition: sum of x x^T + (1-x)(1-x)^T of the first sample's
    sign pattern at each module's output (recorded here with plain hooks, not lpzero's recorder)."""
    outputs: list[torch.Tensor] = []
    handles = [m.register_forward_hook(lambda mod, args, out: outputs.append(out)) for m in modules]
    with torch.no_grad():
        bench.loss(model, ctx.batch)
    for h in handles:
        h.remove()
    total = 0.0
    for out in outputs:
        x = (out[0] > 0).double()
        total += float((x @ x.T + (1 - x) @ (1 - x).T).sum())
    return total


def test_activation_distance_matches_the_token_kernel(bench: TinyGPT2Benchmark) -> None:
    ctx = ProxyContext.create(bench, ARCH, SEED)
    model = ctx.fresh_model()
    linear = [m for m in model.modules() if isinstance(m, Conv1D)]
    assert HAND_DESIGNED["activation_distance"](ctx) == _token_kernel(bench, ctx, model, linear)


# --- properties -------------------------------------------------------------


def test_scaling_the_objective(bench: TinyGPT2Benchmark) -> None:
    # Gradients scale by c, Hessian-gradient products by c^2; cosines, signs and
    # forward-only proxies do not change.
    doubled = DoubledLossBenchmark()
    factors = {
        "grad_norm": 2, "snip": 2, "synaptic_diversity": 2, "synflow": 2, "fisher": 4, "grasp": 4,
        "jacobian_cosine": 1, "eznas": 1, "activation_distance": 1, "softmax_confidence": 1,
    }
    for name, factor in factors.items():
        assert _fresh(doubled, name) == pytest.approx(factor * _fresh(bench, name), rel=1e-5), name


def test_bounds(shared_run: tuple[ProxyContext, dict[str, float]]) -> None:
    ctx, values = shared_run
    sites = ctx.benchmark.zc_sites(ctx.model())
    n_layer = len(sites.softmax)
    for name in ("grad_norm", "snip", "synaptic_diversity", "fisher", "synflow", "logsynflow"):
        assert values[name] > 0, name
    # Each layer adds a sigmoid (0..1); each map's max probability is at most 1.
    assert 0 <= values["eznas"] <= len(sites.weights)
    assert 0 < values["softmax_confidence"] <= n_layer


# --- recipes ----------------------------------------------------------------


class NamedFlexiBERT(TinyGPT2Benchmark):
    name = "flexibert"


def test_default_recipe_follows_the_benchmark(bench: TinyGPT2Benchmark) -> None:
    assert ProxyContext.create(bench, ARCH, SEED).recipe == "lpzero"
    assert ProxyContext.create(NamedFlexiBERT(), ARCH, SEED).recipe == "tfnas"
    with pytest.raises(LPZeroError, match="unknown recipe"):
        ProxyContext.create(bench, ARCH, SEED, recipe="nope")


def test_recipe_parts_are_found_from_the_sites(bench: TinyGPT2Benchmark) -> None:
    ctx = ProxyContext.create(bench, ARCH, SEED, recipe="tfnas")
    model = ctx.model()
    sites = bench.zc_sites(model)
    n_layer = len(model.transformer.h)

    def names(part: str) -> set[str]:
        return {w.name for w in _recipe_weights(ctx, model, sites, part)}

    ffn = {f"h.{i}.mlp.{m}" for i in range(n_layer) for m in ("c_fc", "c_proj")}
    mixer = {f"h.{i}.attn.{m}" for i in range(n_layer) for m in ("c_attn", "c_proj")}
    assert names("ffn") == ffn
    assert names("mixer") == mixer
    assert names("non_ffn") == mixer
    lpzero_ctx = ProxyContext.create(bench, ARCH, SEED, recipe="lpzero")
    assert {w.name for w in _recipe_weights(lpzero_ctx, model, sites, "ffn")} == ffn | mixer


def test_tfnas_recipe_values(bench: TinyGPT2Benchmark) -> None:
    ctx = ProxyContext.create(bench, ARCH, SEED, recipe="tfnas")
    model = _loss_and_grads(bench, ctx)
    mlp = [p for b in model.transformer.h for p in (b.mlp.c_fc.weight, b.mlp.c_proj.weight)]
    expected = sum(float((p.detach() * p.grad).abs().sum()) for p in mlp)
    assert HAND_DESIGNED["synaptic_saliency"](ctx) == pytest.approx(expected, rel=1e-6)
    # Activation distance reads the GELU outputs (A) under this recipe.
    activations = [b.mlp.act for b in model.transformer.h]
    assert HAND_DESIGNED["activation_distance"](ctx) == _token_kernel(bench, ctx, model, activations)
    # The mixer's weights here have 32 < 128 rows, so head importance reads nothing.
    assert HAND_DESIGNED["head_importance"](ctx) == 0.0


def test_paper_proxies_are_the_papers_formulas() -> None:
    from deap import gp

    from lpzero.proxies import LPZERO_FLEXIBERT_TREE, LPZERO_LLAMA_TREE
    from lpzero.report.export import proxy_formula
    from lpzero.primitives import OPS, build_primitive_set

    pset = build_primitive_set(OPS)
    flexibert = proxy_formula(gp.PrimitiveTree.from_string(LPZERO_FLEXIBERT_TREE, pset))
    llama = proxy_formula(gp.PrimitiveTree.from_string(LPZERO_LLAMA_TREE, pset))
    assert flexibert == "layer_sum_l(log(softmax_l(frobenius(theta_A)))) + layer_sum_l(mean(theta_H**(-2)))"
    assert llama == "layer_sum_l(l1(theta_W)**2) + layer_sum_l(mean(sqrt(softmax(theta_W))))"
