"""Streamed extraction (docs/concepts.md, "Streamed extraction"): rows reduced as they exist give exactly the full inputs' samples and scores."""
from __future__ import annotations

import pytest
import torch
from deap import gp
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from fake_benchmark import VOCAB_SIZE, TinyGPT2Benchmark
from lpzero.benchmarks.base import Site, WeightSite, ZCSites
from lpzero.benchmarks.inputs import SYMBOLS, LayerTensor, Layout, as_weighted, extract_inputs, stream_inputs
from lpzero.cache.sampling import sample_context, sample_inputs
from lpzero.primitives import INPUT_SYMBOLS, default_pset, parse_tree, tree_inputs
from lpzero.proxies import ProxyContext, score_tree
from lpzero.proxies import context as proxy_context_module
from lpzero.proxies.found_proxy import PRIMITIVE_SET_VERSION, FoundProxy
from lpzero.proxies.paper import LPZERO_FLEXIBERT_TREE, LPZERO_LLAMA_TREE
from lpzero.proxies.streaming import row_subtrees, stream_score

#: (layers, hidden, FFN width): "wide" has rows past torch's parallel-reduction grain (32,768 elements)
LLAMA_SHAPES = {"llama2": (2, 32, 48), "wide": (2, 64, 640)}


class TinyLlamaBenchmark(TinyGPT2Benchmark):
    """Tiny LLaMA decoders, with the sites LoNAS reads (`lpzero.benchmarks.lonas`)."""

    name = "tiny-llama"

    def ids(self) -> list[str]:
        return list(LLAMA_SHAPES)

    def build_model(self, arch_id: str, seed: int, device: str | torch.device = "cpu") -> nn.Module:
        layers, hidden, ffn = LLAMA_SHAPES[arch_id]
        config = LlamaConfig(vocab_size=VOCAB_SIZE, hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                             attn_implementation="eager")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = LlamaForCausalLM(config)
        return model.to(device)

    def zc_sites(self, model: nn.Module) -> ZCSites:
        act, heads, softmax, weights = [], [], [], []
        for i, layer in enumerate(model.model.layers):
            act.append(Site(i, layer.mlp.down_proj, "input", f"L{i}.down.input"))
            heads.append(Site(i, layer.self_attn.o_proj, "input", f"L{i}.o.input"))
            softmax.append(Site(i, layer.self_attn, "output", f"L{i}.probs", output_index=1))
            weights += [WeightSite(i, f"L{i}.{n}", p) for n, p in layer.named_parameters() if p.dim() == 2]
        return ZCSites(model.model.embed_tokens, act, heads, softmax, weights)


CASES = [(TinyGPT2Benchmark, "tiny2"), (TinyGPT2Benchmark, "tiny4"), (TinyLlamaBenchmark, "llama2"),
         (TinyLlamaBenchmark, "wide")]

TREES = [
    "layer_sum__Lw(mean__Tw(mul__Tw(W, G)))",
    "layer_sum__La(log__La(softmax__La(frobenius__Ta(A))))",
    "add__s(layer_sum__Lh(std__Th(min_max__Th(H))), layer_sum__Ls(normalized_sum__Ts(softmax__Ts(S))))",
    "layer_sum__Lj(l1__Tj(log_softmax__Tj(J)))",
    "div__s(layer_sum__Lw(frobenius__Tw(sub__Tw(G, W))), std__La(mean__Ta(sigmoid__Ta(A))))",
    "mul__s(mean__Lw(std__Tw(softmax__Tw(G))), layer_sum__Lw(min_max__Lw(l1__Tw(W))))",
    LPZERO_FLEXIBERT_TREE,
    LPZERO_LLAMA_TREE,
]


@pytest.fixture(params=[1, None], ids=["1-thread", "default-threads"])
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param or before)
    yield
    torch.set_num_threads(before)


def _context(case: tuple) -> ProxyContext:
    bench_class, arch = case
    bench = bench_class()
    return ProxyContext(bench, arch, 0, bench.make_batch(0, 2, 24))


@pytest.mark.parametrize("case", CASES, ids=[a for _, a in CASES])
@pytest.mark.parametrize("samples", [16, 256])
def test_streamed_cache_samples_equal_the_full_inputs_samples_bitwise(case, samples, threads):
    ctx = _context(case)
    full = sample_inputs(extract_inputs(ctx.benchmark, ctx.model(), ctx.inputs()), samples, seed=7)
    streamed = sample_context(_context(case), samples, seed=7)
    assert streamed.keys() == full.keys()
    for key in full:
        assert torch.equal(streamed[key], full[key]), key
    shared = _context(case)
    assert all(torch.equal(a, b) for a, b in zip(sample_context(shared, samples, 7, full=True).values(), full.values()))


@pytest.mark.parametrize("case", CASES, ids=[a for _, a in CASES])
def test_streamed_tree_scores_equal_the_full_inputs_scores_exactly(case, threads):
    pset = default_pset()
    ctx = _context(case)
    inputs = extract_inputs(ctx.benchmark, ctx.model(), ctx.inputs())
    for text in TREES:
        tree = parse_tree(text, pset)
        assert stream_score(_context(case), tree, pset) == score_tree(tree, inputs, "cpu", pset), text


def _batched_score(tree, inputs, pset) -> float:
    """A tree on all rows at once, each padded to the widest (how lpzero scored trees before streaming)."""
    weighted = as_weighted(inputs, "cpu", tree_inputs(tree))
    with torch.no_grad():
        return float(gp.compile(tree, pset)(*[weighted[s] for s in INPUT_SYMBOLS])[0])


@pytest.mark.parametrize("case", CASES, ids=[a for _, a in CASES])
def test_row_scores_do_not_depend_on_threads_and_match_all_rows_at_once(case):
    pset = default_pset()
    ctx = _context(case)
    inputs = extract_inputs(ctx.benchmark, ctx.model(), ctx.inputs())
    before = torch.get_num_threads()
    try:
        for text in TREES:
            tree = parse_tree(text, pset)
            torch.set_num_threads(1)
            one = score_tree(tree, inputs, "cpu", pset)
            torch.set_num_threads(max(2, before))
            assert score_tree(tree, inputs, "cpu", pset) == one, text
            # row by row is a different order of the same float32 sums: equal to rounding
            assert one == pytest.approx(_batched_score(tree, inputs, pset), rel=1e-5, abs=1e-6), text
    finally:
        torch.set_num_threads(before)


def test_a_found_proxy_streams_above_the_size_limit_and_shares_below_it(monkeypatch):
    proxy = FoundProxy.from_best({"tree": TREES[4], "primitive_set_version": PRIMITIVE_SET_VERSION, "orientation": -1})
    ctx = _context(CASES[2])
    expected = proxy.score_inputs(extract_inputs(ctx.benchmark, ctx.model(), ctx.inputs()))
    shared = _context(CASES[2])
    assert proxy.score(shared) == expected and shared.has_shared("inputs AGW")  # small: one shared extraction
    monkeypatch.setattr(proxy_context_module, "STREAM_ABOVE_BYTES", 0)
    streamed = _context(CASES[2])
    assert proxy.score(streamed) == expected and not streamed.has_shared("inputs AGW")
    assert proxy.score(shared) == expected  # what a context holds already is read, not extracted again


def test_row_subtrees_are_the_reductions_out_of_the_tensors_level():
    tree = parse_tree(TREES[4], default_pset())
    subs = row_subtrees(tree)
    assert [str(tree[s.span][0].name) for s in subs] == ["frobenius__Tw", "mean__Ta"]
    assert [s.symbols for s in subs] == [{"G", "W"}, {"A"}]


def test_gradients_are_released_as_backward_produces_them():
    bench = TinyLlamaBenchmark()
    model = bench.build_model("llama2", 0)
    held: list[int] = []
    seen: dict[tuple[str, int], torch.Tensor] = {}

    class Watch:
        def begin(self, layout: Layout) -> None:
            assert [len(layout[s]) for s in SYMBOLS] == [2, 1, 14, 2, 14, 2]

        def rows(self, index: int, tensors: dict[str, LayerTensor]) -> None:
            if "G" in tensors:
                held.append(sum(p.grad is not None for p in model.parameters()))
            seen.update({(s, index): t.stored.clone() for s, t in tensors.items()})

    stream_inputs(bench, model, bench.make_batch(0, 2, 24), Watch())
    assert held and max(held) == 1  # the row's own parameter: every earlier gradient is gone
    assert all(p.grad is None for p in model.parameters())
    full = extract_inputs(bench, model, bench.make_batch(0, 2, 24))
    assert all(torch.equal(seen[s, i], row.stored) for s in SYMBOLS for i, row in enumerate(full[s]))


class SharedWeightBenchmark(TinyGPT2Benchmark):
    """A parameter read by two weight sites, and a site whose parameter gets no gradient."""

    def zc_sites(self, model: nn.Module) -> ZCSites:
        sites = super().zc_sites(model)
        frozen = nn.Parameter(torch.ones(3, 3))
        return ZCSites(sites.embedding, sites.activations, sites.heads, sites.softmax,
                       sites.weights + [sites.weights[0], WeightSite(9, "unused", frozen)])


def test_a_parameter_in_two_sites_gives_both_its_gradient_and_an_unreached_one_zeros():
    bench = SharedWeightBenchmark()
    x = extract_inputs(bench, bench.build_model("tiny2", 0), bench.make_batch(0, 2, 24))
    assert torch.equal(x["G"][0].stored, x["G"][-2].stored) and x["G"][0].stored.abs().sum() > 0
    assert torch.equal(x["G"][-1].stored, torch.zeros(3, 3))
