"""One evaluator: fitness's `Program`, row-by-row scoring and the exported torch module agree on random trees.

On the cached (sampled) inputs of the tiny benchmark, for random typed trees of the default, the
extended and a custom op table: (a) the compiled `Program` on the stacked [N, L, K] inputs (what
fitness reads; bitwise `gp.compile`), (b) `RowProgram` per architecture on the same rows and (c)
the module `lpzero export --format torch` writes, on the same rows, give the same scores and the
same validity (`spearman_fitness`, invalid reason included).
"""
from __future__ import annotations

import functools
import importlib.util
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from deap import gp

from conftest import FAKE_BENCHMARK
from lpzero.cache import CacheSettings, InputCache
from lpzero.cli import main
from lpzero.primitives import INPUT_SYMBOLS, OPS, Scalar, build_primitive_set, generate_typed, op_table, pset_of
from lpzero.primitives.program import Row, RowProgram, compile_tree
from lpzero.proxies.found_proxy import PRIMITIVE_SET_VERSION, FoundProxy
from lpzero.report.export_torch import torch_module
from lpzero.search.fitness import Invalid, spearman_fitness
from synthetic import synthetic_inputs

IDS = [f"tiny{i}" for i in range(6)]
#: made-up ground truth (higher = better), one per architecture
TRUTH = [0.3, -1.0, 2.5, 0.0, 1.25, -0.5]
CUSTOM = f"{Path(__file__).resolve().parent.parent / 'scripts' / 'custom_operators.py'}:CUSTOM_OPS"
#: op table (as best.json names it; None: the default) -> trees drawn from it
TABLES = {"default": None, "extended": "extended", "custom": CUSTOM}
TREES_PER_TABLE = 100
#: trees every table can read whose scores are known to be invalid on any inputs
INVALID = {
    # exp(exp(exp(|x|))) >= 15: the next exp is capped at e^80, whose square overflows float32
    "square__s(exp__s(exp__s(exp__s(exp__s(abs__s(layer_sum__Lw(l1__Tw(W))))))))": Invalid.NON_FINITE,
    "layer_sum__Ls(mean__Ts(min_max__Ts(abs__Ts(sub__Ts(S, S)))))": Invalid.CONSTANT,
}


@pytest.fixture(scope="module")
def cached(tmp_path_factory) -> tuple[dict, list[dict]]:
    """(the six architectures' inputs stacked [N, L, K], each architecture's rows (values, weights, present))."""
    cache = InputCache(CacheSettings(FAKE_BENCHMARK, 2, 16, samples=64), tmp_path_factory.mktemp("cache"))
    cache.compute(IDS)
    rows = []
    for arch in IDS:
        one = cache.load([arch])  # [1, L, K]: its own layers, plus one absent layer for an input it lacks
        rows.append({s: [(w.values[0, l], w.weights[0, l], w.present[0, l]) for l in range(w.values.shape[1])
                         if w.present[0, l].any()] for s, w in one.items()})
    return cache.load(IDS), rows


def _import(source: str, path: Path):
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _found(tree: str, ops: str | None) -> FoundProxy:
    best = {"tree": tree, "orientation": 1, "primitive_set_version": PRIMITIVE_SET_VERSION}
    return FoundProxy.from_best(best if ops is None else {**best, "ops": ops})


def _three_ways(tree: gp.PrimitiveTree, ops: str | None, cached, path: Path) -> tuple[np.ndarray, ...]:
    """(a) fitness's scores, (b) row by row, (c) the exported module's, of the six architectures."""
    stacked, rows = cached
    pset = pset_of(op_table(ops))
    program = compile_tree(tree, pset)
    args = [stacked[s] for s in INPUT_SYMBOLS]
    with torch.no_grad():
        fitness, compiled = program(*args), gp.compile(tree, pset)(*args)
    torch.testing.assert_close(fitness, compiled, rtol=0, atol=0, equal_nan=True, msg=str(tree))  # bitwise
    by_rows = RowProgram(program)
    row_scores = [float(by_rows({s: [Row(*r) for r in arch[s]] for s in arch})[0]) for arch in rows]
    module = _import(torch_module(_found(str(tree), ops)), path)
    exported = [module.proxy_rows(**arch) for arch in rows]
    return fitness.double().numpy(), np.array(row_scores), np.array(exported)


def _agree(tree: str, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> Invalid | None:
    """Assert the three agree; the reason their scores are invalid (None if valid)."""
    np.testing.assert_array_equal(b, c, err_msg=tree)  # the same functions on the same rows
    scale = np.abs(a[np.isfinite(a)]).max(initial=0.0)
    # one row at a time may round float32 sums differently from [N, L, K] at once (at these sizes the
    # scores come out equal; the tolerance only allows for it)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * scale, equal_nan=True, err_msg=tree)
    reasons = [spearman_fitness(x, TRUTH).reason for x in (a, b, c)]
    assert reasons[0] == reasons[1] == reasons[2], (tree, reasons)
    return reasons[0]


@pytest.mark.parametrize("table", TABLES)
def test_fitness_rows_and_export_agree_on_random_trees(table, cached, tmp_path):
    ops = TABLES[table]
    pset, rng = pset_of(op_table(ops)), random.Random(2024)
    seen: dict[Invalid | None, int] = {}
    for i in range(TREES_PER_TABLE):
        tree = gp.PrimitiveTree(generate_typed(pset, 2, 6, rng=rng))
        reason = _agree(str(tree), *_three_ways(tree, ops, cached, tmp_path / f"tree_{i}.py"))
        seen[reason] = seen.get(reason, 0) + 1
    for text, expected in INVALID.items():
        tree = gp.PrimitiveTree.from_string(text, pset)
        assert _agree(text, *_three_ways(tree, ops, cached, tmp_path / "invalid.py")) == expected, text
    assert seen.get(None, 0) > TREES_PER_TABLE // 2 and seen.get(Invalid.CONSTANT), seen


def test_a_custom_ops_best_json_exports_as_torch(cached, tmp_path):
    tree = "layer_sum__Lw(mean__Tw(softplus__Tw(mul__Tw(W, G))))"
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.json").write_text(json.dumps({"tree": tree, "orientation": -1, "ops": CUSTOM,
                                               "primitive_set_version": PRIMITIVE_SET_VERSION}))
    result = CliRunner().invoke(main, ["export", str(run / "best.json"), "--format", "torch"])
    assert result.exit_code == 0, result.output
    imports = [line for line in result.output.splitlines() if line.startswith(("import ", "from "))]
    assert "torch.nn.functional.softplus" in result.output and not any("lpzero" in line for line in imports)
    module = _import(result.output, tmp_path / "custom_proxy.py")
    program = RowProgram(compile_tree(_found(tree, CUSTOM).parsed, op_table(CUSTOM)))
    for arch in cached[1]:
        expected = -float(program({s: [Row(*r) for r in arch[s]] for s in arch})[0])
        assert module.proxy_rows(**arch) == expected
    assert OPS is not op_table(CUSTOM) and "softplus" not in OPS


def test_constant_terminals_are_read_as_gp_compile_reads_them():
    pset = build_primitive_set(OPS)
    pset.addTerminal(2.5, Scalar)
    pset.addTerminal(0.5, Scalar, name="half")
    pset.addEphemeralConstant("tree_evaluator_ephemeral", functools.partial(random.uniform, 1.0, 2.0), Scalar)
    inputs = synthetic_inputs(n_arch=4, samples=16, seed=1)
    args = [inputs[s] for s in INPUT_SYMBOLS]
    # the ops take a tensor first (torch.mul(tensor, 0.5)); the constant goes second
    for text in ["mul__s(add__s(layer_sum__Lw(l1__Tw(W)), 2.5), half)", "sub__s(layer_sum__La(mean__Ta(A)), half)"]:
        tree = gp.PrimitiveTree.from_string(text, pset)
        assert torch.equal(compile_tree(tree, pset)(*args), gp.compile(tree, pset)(*args)), text
    ephemeral = pset.mapping["tree_evaluator_ephemeral"]()
    tree = gp.PrimitiveTree([pset.mapping["mul__s"], *gp.PrimitiveTree.from_string("layer_sum__Lh(std__Th(H))", pset),
                             ephemeral])
    assert torch.equal(compile_tree(tree, pset)(*args), gp.compile(tree, pset)(*args))
    # row by row: the constant is in the part of the tree above the rows
    rows = {"H": [Row(inputs["H"].values[0, l], inputs["H"].weights[0, l], inputs["H"].present[0, l])
                  for l in range(inputs["H"].values.shape[1]) if inputs["H"].present[0, l].any()]}
    by_rows = float(RowProgram(compile_tree(tree, pset))(rows)[0])
    assert by_rows == pytest.approx(float(gp.compile(tree, pset)(*args)[0]), rel=1e-5)


def test_the_observer_sees_every_op_in_gp_compiles_order():
    pset = pset_of(OPS)
    tree = gp.PrimitiveTree.from_string("add__s(layer_sum__Lw(l1__Tw(W)), layer_sum__Lh(std__Th(H)))", pset)
    inputs = synthetic_inputs(n_arch=3, samples=8, seed=2)
    seen = []
    out = compile_tree(tree, pset).evaluate(inputs, lambda i, args, value: seen.append((i, len(args))))
    assert seen == [(2, 1), (1, 1), (5, 1), (4, 1), (0, 2)]
    assert torch.equal(out, gp.compile(tree, pset)(*[inputs[s] for s in INPUT_SYMBOLS]))
