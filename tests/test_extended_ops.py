"""The "extended" op table (docs/concepts.md, "The extended op table"): depth-weighted sum, first/last layer and median, each
added through the op table, in every place a built-in op goes (toolbox, cached and streamed scoring,
sympy/LaTeX, torch export, `lpzero evolve --ops`), while the default table stays as it was."""
from __future__ import annotations

import importlib.util
import json
import random
import shutil
from pathlib import Path

import pytest
import sympy
import torch
from click.testing import CliRunner
from deap import gp

from conftest import FAKE_BENCHMARK
from fake_benchmark import TinyGPT2Benchmark
from lpzero.benchmarks.inputs import SYMBOLS, as_weighted, extract_inputs
from lpzero.cli import main
from lpzero.errors import ResultError, UnknownNameError
from lpzero.primitives import (INPUT_SYMBOLS, OPS, OP_TABLES, OpTable, Weighted, extended_table, op_table,
                               parse_tree, pset_of, tree_inputs)
from lpzero.primitives.ops import EXTENDED_OPS
from lpzero.primitives.op import markdown_table
from lpzero.proxies import ProxyContext, score_tree
from lpzero.proxies.found_proxy import PRIMITIVE_SET_VERSION, FoundProxy
from lpzero.proxies.streaming import stream_score
from lpzero.registry import load_object
from lpzero.report.export import proxy_formula
from lpzero.report.export_torch import sympy_namespace, sympy_srepr, torch_module
from lpzero.search import EvolveSettings, FitnessEvaluator, SearchSetup, build_toolbox, evolve_on
from synthetic import planted_truth, synthetic_inputs

NEW = ["depth_weighted", "first_layer", "last_layer", "median"]
#: the built-in table's ops, in order, before this issue: it must not change
DEFAULT_NAMES = ["log", "abslog", "abs", "square", "exp", "sqrt", "relu", "reciprocal", "neg", "frobenius",
                 "normalized_sum", "l1", "mean", "std", "layer_sum", "softmax", "sigmoid", "log_softmax", "min_max",
                 "identity", "prune", "add", "sub", "mul", "div"]
#: trees reading each new op, at each of its levels
TREES = [
    "depth_weighted__Lw(frobenius__Tw(W))",
    "first_layer__La(median__Ta(A))",
    "sub__s(last_layer__Lh(l1__Th(H)), median__Lw(mean__Tw(mul__Tw(W, G))))",
    "add__s(depth_weighted__Ls(std__Ts(S)), first_layer__Lj(frobenius__Tj(J)))",
]


def _layers(values, present) -> Weighted:
    """Per-layer values of several architectures, as a reduction of the tensors level gives them."""
    values = torch.tensor(values)
    return Weighted(values, torch.ones(values.shape[0], 1), torch.tensor(present))


def _at(op: str, level: str):
    return op_table("extended")[op].runtime(level)


# --- the tables -----------------------------------------------------------------------------------

def test_the_default_table_is_unchanged():
    assert [op.name for op in OPS] == DEFAULT_NAMES
    assert op_table("default") is OPS and not any(name in OPS for name in NEW)


def test_the_extended_table_is_the_default_plus_the_new_ops_each_probed_on_adding():
    table = op_table("extended")
    assert [op.name for op in table] == DEFAULT_NAMES + NEW and [op.name for op in EXTENDED_OPS] == NEW
    assert table is extended_table() and table.path == "extended" and "extended" in OP_TABLES.names()
    assert all(table[name] is OPS[name] for name in DEFAULT_NAMES)


def test_one_op_alone_is_a_table_of_its_own_named_by_its_path():
    alone = op_table("extended:median")
    assert [op.name for op in alone] == DEFAULT_NAMES + ["median"] and alone.path == "extended:median"
    two = op_table("extended:median,first_layer")  # the path lists the ops in the table's order
    assert two is extended_table(["first_layer", "median"]) and two.path == "extended:first_layer,median"
    assert op_table(two.path) is two


@pytest.mark.parametrize("spec", ["extended:nope", "extended:"])
def test_an_unknown_extended_op_is_one_line(spec):
    with pytest.raises(UnknownNameError, match="unknown extended op .* depth_weighted, first_layer") as e:
        op_table(spec)
    assert "\n" not in str(e.value)


# --- values against hand computation ------------------------------------------------------------

#: two architectures: three layers, and two (its third row is padding)
PADDED = _layers([[1.0, 2.0, 4.0], [3.0, 5.0, 7.0]], [[True, True, True], [True, True, False]])
#: an absent layer inside (a row of an input one architecture lacks), and an architecture with none
HOLED = _layers([[1.0, 9.0, 4.0], [3.0, 5.0, 7.0]], [[True, False, True], [False, False, False]])


@pytest.mark.parametrize("op, padded, holed", [
    ("depth_weighted", [(1 * 1 + 2 * 2 + 4 * 3) / 3, (3 * 1 + 5 * 2) / 2], [(1 * 1 + 4 * 2) / 2, 0.0]),
    ("first_layer", [1.0, 3.0], [1.0, 0.0]),
    ("last_layer", [4.0, 5.0], [4.0, 0.0]),
    ("median", [2.0, 3.0], [1.0, 0.0]),  # of an even count, the lower middle value
])
def test_layer_ops_count_only_real_layers(op, padded, holed):
    assert _at(op, "layers")(PADDED).tolist() == pytest.approx(padded)
    assert _at(op, "layers")(HOLED).tolist() == pytest.approx(holed)


def test_the_median_of_a_sampled_tensor_counts_each_element_weight_times():
    values = torch.tensor([[[1.0, 10.0, 2.0, 3.0], [5.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    weights = torch.tensor([[[1.0, 5.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0], [1.0, 1.0, 1.0, 1.0]]])
    # row 2 has two elements (a padded tail), row 3 is an absent layer
    present = torch.tensor([[[True] * 4, [True, True, False, False], [False] * 4]])
    out = _at("median", "tensors")(Weighted(values, weights, present))
    # 10 stands for 5 of the 8 elements: more than half of the tensor is 10
    assert out.values.tolist() == [[10.0, -1.0, 0.0]] and out.present.tolist() == [[True, True, False]]
    plain = Weighted.from_weights(values[:, :1], torch.ones(1, 1, 1))
    assert _at("median", "tensors")(plain).values.item() == torch.median(values[0, 0]).item() == 2.0


def test_trees_score_cached_inputs_as_each_architecture_alone():
    """Cached inputs pad every architecture to the most layers (synthetic_inputs: the first one lacks
    its last layer); a tree's score of one architecture must not depend on the others."""
    inputs = synthetic_inputs(n_arch=4, samples=16)
    pset = pset_of(op_table("extended"))

    def scores(x: dict) -> torch.Tensor:
        return gp.compile(parse_tree(text, pset), pset)(*[x[s] for s in INPUT_SYMBOLS])

    for text in TREES:
        together = scores(inputs)
        first = {s: Weighted(w.values[:1, :-1], w.weights[:1, :-1], w.present[:1, :-1]) for s, w in inputs.items()}
        assert torch.isfinite(together).all() and together[0].item() == pytest.approx(scores(first)[0].item()), text


def test_the_typed_toolbox_builds_and_scores_trees_with_the_new_ops():
    table = op_table("extended")
    inputs = synthetic_inputs()
    random.seed(0)
    evaluator = FitnessEvaluator(pset_of(table), inputs, planted_truth(inputs))
    tb = build_toolbox("typed", evaluator, ops=table, pset=pset_of(table))
    trees = [tb.individual() for _ in range(300)]
    used = {node.name.partition("__")[0] for tree in trees for node in tree if isinstance(node, gp.Primitive)}
    assert set(NEW) <= used
    assert any(evaluator(t).valid for t in trees if set(NEW) & {n.name.partition("__")[0] for n in t})


# --- streamed, exported, printed ------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_inputs():
    bench = TinyGPT2Benchmark()
    return {a: extract_inputs(bench, bench.build_model(a, 0), bench.make_batch(0, 2, 24)) for a in ("tiny2", "tiny4")}


def _context(arch: str) -> ProxyContext:
    bench = TinyGPT2Benchmark()
    return ProxyContext(bench, arch, 0, bench.make_batch(0, 2, 24))


@pytest.mark.parametrize("text", TREES)
def test_streamed_scores_equal_full_scores(text, tiny_inputs):
    pset = pset_of(op_table("extended"))
    tree = parse_tree(text, pset)
    for arch, inputs in tiny_inputs.items():
        full = score_tree(tree, inputs, "cpu", pset)
        assert stream_score(_context(arch), tree, pset) == full, (arch, text)
        weighted = as_weighted(inputs, "cpu", tree_inputs(tree))  # all rows at once, padded to the widest
        with torch.no_grad():
            batched = float(gp.compile(tree, pset)(*[weighted.get(s) for s in INPUT_SYMBOLS])[0])
        assert full == pytest.approx(batched, rel=1e-5, abs=1e-6), (arch, text)


def _found(text: str, orientation: int = 1) -> FoundProxy:
    return FoundProxy.from_best({"tree": text, "orientation": orientation, "ops": "extended",
                                 "primitive_set_version": PRIMITIVE_SET_VERSION})


def test_every_new_op_exports_its_own_torch_function():
    for name in NEW:
        op = op_table("extended")[name]
        tree = f"{name}__Lw(l1__Tw(W))" if op.levels == ("layers",) else f"layer_sum__Lw({name}__Tw(W))"
        assert f"def {op.torch_fn.__name__}(x: Weighted)" in torch_module(_found(tree)), name


@pytest.mark.parametrize("text", TREES)
def test_the_exported_module_returns_lpzeros_score(text, tiny_inputs, tmp_path):
    found = _found(text, -1)
    path = tmp_path / "exported.py"
    path.write_text(torch_module(found))
    spec = importlib.util.spec_from_file_location("exported", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for arch, x in tiny_inputs.items():
        lists = {s: [lt.stored for lt in x[s]] if s in found.inputs_needed else None for s in SYMBOLS}
        assert module.proxy(**lists) == pytest.approx(found.score_inputs(x), rel=1e-5, abs=0), (arch, text)


@pytest.mark.parametrize("text, formula, latex", [
    ("depth_weighted__Lw(frobenius__Tw(W))", "depth_weighted_l(frobenius(theta_W))",
     r"\sum_{l} \frac{l}{L} \left(\left\|\theta_{W}\right\|_{F}\right)"),
    ("first_layer__La(median__Ta(A))", "first_layer_l(median(theta_A))",
     r"\left(\operatorname{median}\left(\theta_{A}\right)\right)_{l=1}"),
    ("last_layer__Lw(neg__Lw(median__Tw(W)))", "-last_layer_l(median(theta_W))",
     r"- \left(\operatorname{median}\left(\theta_{W}\right)\right)_{l=L}"),
    ("median__Lw(neg__Lw(l1__Tw(W)))", "median_l(-l1(theta_W))",
     r"\operatorname{median}_{l}\left(- \left\|\theta_{W}\right\|_{1}\right)"),
])
def test_formulas_print_the_new_ops(text, formula, latex):
    table = op_table("extended")
    tree = parse_tree(text, pset_of(table))
    assert proxy_formula(tree, 1, "text", table) == formula
    assert proxy_formula(tree, 1, "latex", table) == latex
    srepr = sympy_srepr(_found(text))
    assert str(sympy.sympify(srepr, locals=sympy_namespace(table))) == formula


# --- lpzero evolve --ops ------------------------------------------------------------------------

def _evolve_args(root, *more) -> list[str]:
    args = ["evolve", "--benchmark", FAKE_BENCHMARK, "--cache-dir", root / "cache", "--out", root / "run",
            "--samples", "12288", "--population", "8", "--iterations", "4", "--sample", "3", "--runs", "1",
            "--baselines", "num_params", *more]
    return [str(a) for a in args]


@pytest.fixture(scope="module")
def extended_run(tmp_path_factory):
    """`lpzero evolve --ops extended` on the fake benchmark: its root (cache/, run/)."""
    root = tmp_path_factory.mktemp("extended")
    result = CliRunner().invoke(main, _evolve_args(root, "--ops", "extended"))
    assert result.exit_code == 0, result.output
    return root


def test_evolve_records_the_extended_table_and_export_reads_it_back(extended_run, tmp_path):
    run = extended_run / "run"
    assert json.loads((run / "best.json").read_text())["ops"] == "extended"
    assert FoundProxy.load(run).ops is op_table("extended")
    best = json.loads((run / "best.json").read_text())
    (tmp_path / "best.json").write_text(json.dumps({**best, "tree": TREES[0], "protection": []}))
    result = CliRunner().invoke(main, ["export", str(tmp_path / "best.json"), "--format", "torch"])
    assert result.exit_code == 0 and "def _depth_weighted(x: Weighted)" in result.output, result.output


def test_an_unknown_ops_table_is_one_line_before_any_work(tmp_path):
    r = CliRunner().invoke(main, _evolve_args(tmp_path, "--ops", "no_such_table"))
    assert r.exit_code == 2 and "unknown op table 'no_such_table'" in r.stderr and "Traceback" not in r.output
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("other", ["extended:median", "default"])
def test_resume_with_another_op_table_is_refused(extended_run, tmp_path, other):
    shutil.copytree(extended_run, tmp_path, dirs_exist_ok=True)
    r = CliRunner().invoke(main, _evolve_args(tmp_path, "--ops", other, "--resume"))
    assert r.exit_code == 2 and "context.ops was 'extended' then" in r.stderr, r.output


def test_a_search_resumes_only_with_its_own_table(tmp_path):
    inputs = synthetic_inputs()
    setup = SearchSetup(runs=1, evolve=EvolveSettings(population=8, iterations=3))
    evolve_on(inputs, planted_truth(inputs), setup, tmp_path, ops="extended:depth_weighted")
    evolve_on(inputs, planted_truth(inputs), setup, tmp_path, resume=True, ops="extended:depth_weighted")
    with pytest.raises(ResultError, match="context.ops"):
        evolve_on(inputs, planted_truth(inputs), setup, tmp_path, resume=True)


# --- the ablation and the docs ------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def test_search_validation_has_the_ablation_variants():
    variants = load_object(f"{ROOT / 'scripts' / 'search_validation.py'}:VARIANTS")
    assert variants["typed"] == ({}, {}, "default") and variants["typed-extended"] == ({}, {}, "extended")
    assert {name: v[2] for name, v in variants.items() if name.startswith("typed+")} == \
        {f"typed+{op}": f"extended:{op}" for op in NEW}


def test_concepts_lists_the_extended_ops():
    alone = OpTable()
    for op in EXTENDED_OPS:
        alone.add(op)
    assert markdown_table(alone) in (ROOT / "docs" / "concepts.md").read_text()
