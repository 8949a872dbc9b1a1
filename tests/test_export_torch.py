"""`lpzero export --format torch|sympy`: the exported module scores as lpzero does, guards included."""
import importlib.util
import json

import pytest
import sympy
from click.testing import CliRunner

from fake_benchmark import TinyGPT2Benchmark
from lpzero.benchmarks.inputs import SYMBOLS, extract_inputs
from lpzero.cli import main
from lpzero.primitives import OPS
from lpzero.proxies.found_proxy import PRIMITIVE_SET_VERSION, FoundProxy
from lpzero.report.export import simplify, tree_to_sympy
from lpzero.report.export_torch import TORCH_OPS, sympy_namespace, sympy_srepr, torch_module

ARCHS = ["tiny0", "tiny3", "tiny5"]

#: (tree, orientation): plain trees and guarded ones (log, sqrt, reciprocal, div of values that can be 0)
TREES = [
    ("layer_sum__Lw(frobenius__Tw(mul__Tw(W, G)))", 1),
    ("layer_sum__Lh(mean__Th(log__Th(relu__Th(H))))", -1),  # log of exact zeros: clamped to 1e-12
    ("layer_sum__Lw(reciprocal__Lw(min_max__Lw(l1__Tw(W))))", 1),  # 1/0 at the smallest layer
    ("layer_sum__Lh(l1__Th(div__Th(H, relu__Th(H))))", 1),  # divisor 0 wherever H <= 0
    ("sqrt__s(sub__s(layer_sum__La(std__Ta(A)), layer_sum__La(l1__Ta(A))))", 1),  # sqrt of a negative: 0
    ("add__s(sqrt__s(layer_sum__La(std__Ta(A))), exp__s(layer_sum__Ls(frobenius__Ts(S))))", 1),
    ("layer_sum__La(log_softmax__La(mean__Ta(exp__Ta(A))))", -1),
    ("layer_sum__Lj(abslog__Lj(frobenius__Tj(sigmoid__Tj(square__Tj(J)))))", 1),
    ("normalized_sum__Lw(softmax__Lw(std__Tw(neg__Tw(abs__Tw(G)))))", 1),
]


@pytest.fixture(scope="module")
def inputs():
    bench = TinyGPT2Benchmark()
    batch = bench.make_batch(0)
    return {a: extract_inputs(bench, bench.build_model(a, 0), batch) for a in ARCHS}


def _proxy(tree: str, orientation: int) -> FoundProxy:
    return FoundProxy.from_best({"tree": tree, "orientation": orientation, "primitive_set_version": PRIMITIVE_SET_VERSION})


def _module(source: str, path):
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_table_covers_every_runtime_op():
    assert {op.name for op in OPS if op.torch_fn is not None} == set(TORCH_OPS)


@pytest.mark.parametrize("tree, orientation", TREES)
def test_the_exported_module_returns_lpzeros_exact_score(tree, orientation, inputs, tmp_path):
    found = _proxy(tree, orientation)
    source = torch_module(found)
    assert [line for line in source.splitlines() if line.startswith(("import", "from"))] == ["import torch"]
    module = _module(source, tmp_path / "exported_proxy.py")
    for arch, x in inputs.items():
        lists = {s: [lt.stored for lt in x[s]] if s in found.inputs_needed else None for s in SYMBOLS}
        expected = found.score_inputs(x)
        assert module.proxy(**lists) == pytest.approx(expected, rel=1e-5, abs=0), (arch, tree)


def test_cli_exports_torch_and_sympy(tmp_path, inputs):
    tree = TREES[1][0]
    best = tmp_path / "best.json"
    best.write_text(json.dumps({"tree": tree, "orientation": -1, "primitive_set_version": PRIMITIVE_SET_VERSION,
                                "formula": "f"}))
    result = CliRunner().invoke(main, ["export", str(best), "--format", "torch"])
    assert result.exit_code == 0, result.output
    module = _module(result.output, tmp_path / "cli_proxy.py")
    x = inputs["tiny0"]
    score = module.proxy(A=None, J=None, G=None, H=[lt.stored for lt in x["H"]], W=None, S=None)
    assert score == pytest.approx(_proxy(tree, -1).score_inputs(x), rel=1e-5)
    with pytest.raises(ValueError, match="input H is empty"):
        module.proxy(None, None, None, None, None, None)

    result = CliRunner().invoke(main, ["export", str(best), "--format", "sympy"])
    assert result.exit_code == 0, result.output
    back = sympy.sympify(result.output.strip(), locals=sympy_namespace(OPS))
    found = _proxy(tree, -1)
    assert back == simplify(-tree_to_sympy(found.parsed, OPS)) and sympy.srepr(back) == sympy_srepr(found)
