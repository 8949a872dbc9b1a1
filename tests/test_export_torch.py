"""`lpzero export --format torch|sympy`: the exported module scores as lpzero does, guards included."""
import importlib.util
import json
import sys

import pytest
import sympy
from click.testing import CliRunner

from fake_benchmark import TinyGPT2Benchmark
from lpzero.benchmarks.inputs import SYMBOLS, extract_inputs
from lpzero.cli import main
from lpzero.errors import LPZeroError
from lpzero.primitives import OPS, op_table
from lpzero.proxies.found_proxy import PRIMITIVE_SET_VERSION, FoundProxy
from lpzero.report.export import simplify, tree_to_sympy
from lpzero.report.export_torch import sympy_namespace, sympy_srepr, torch_module

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


def _proxy(tree: str, orientation: int, ops: str | None = None) -> FoundProxy:
    best = {"tree": tree, "orientation": orientation, "primitive_set_version": PRIMITIVE_SET_VERSION}
    return FoundProxy.from_best(best if ops is None else {**best, "ops": ops})


def _module(source: str, path):
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _imports(source: str) -> set[str]:
    """The top-level packages the module imports."""
    lines = [line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))]
    return {name.partition(".")[0] for name in lines}


def _tree_reading(op) -> str:
    """A tree that applies `op` at its first level (tensors, else layers) to W."""
    if op.kind == "reduce":
        return f"layer_sum__Lw({op.name}__Tw(W))" if "tensors" in op.levels else f"{op.name}__Lw(l1__Tw(W))"
    args = "W, G" if op.arity == 2 else "W"
    return f"layer_sum__Lw(l1__Tw({op.name}__Tw({args})))"


def _scores_agree(found: FoundProxy, module, inputs) -> None:
    for arch, x in inputs.items():
        lists = {s: [lt.stored for lt in x[s]] if s in found.inputs_needed else None for s in SYMBOLS}
        expected = found.score_inputs(x)
        # the same functions on the same rows: the same float
        assert module.proxy(**lists) == expected or expected != expected, (arch, found.tree)
        # lpzero's own LayerTensor lists, as extract_inputs gives them
        assert module.proxy(**{s: x[s] for s in SYMBOLS}) == module.proxy(**lists) or expected != expected


@pytest.mark.parametrize("tree, orientation", TREES)
def test_the_exported_module_returns_lpzeros_exact_score(tree, orientation, inputs, tmp_path):
    found = _proxy(tree, orientation)
    source = torch_module(found)
    assert all(name == "torch" or name in sys.stdlib_module_names for name in _imports(source)), _imports(source)
    _scores_agree(found, _module(source, tmp_path / "exported_proxy.py"), inputs)


@pytest.mark.parametrize("table", ["default", "extended"])
def test_every_op_of_the_tables_exports_from_the_op_table_itself(table, inputs, tmp_path):
    for op in op_table(table):
        if not op.typed:
            continue
        found = _proxy(_tree_reading(op), 1, table)
        source = torch_module(found)
        if op.torch_fn.__module__ == "lpzero.primitives.ops":
            assert f"def {op.torch_fn.__name__}(" in source, op.name  # the table's own function, copied
        _scores_agree(found, _module(source, tmp_path / f"exported_{op.name}.py"), {"tiny3": inputs["tiny3"]})


def test_only_the_functions_the_tree_needs_are_written():
    source = torch_module(_proxy(TREES[1][0], -1))
    assert "def _log(" in source and "def _mean(" in source and "torch.relu" in source
    assert "def _exp(" not in source and "def _softmax(" not in source and "EXP_CAP" not in source


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
    assert score == _proxy(tree, -1).score_inputs(x)
    with pytest.raises(ValueError, match="input H is None"):
        module.proxy(None, None, None, None, None, None)

    result = CliRunner().invoke(main, ["export", str(best), "--format", "sympy"])
    assert result.exit_code == 0, result.output
    back = sympy.sympify(result.output.strip(), locals=sympy_namespace(OPS))
    found = _proxy(tree, -1)
    assert back == simplify(-tree_to_sympy(found.parsed, OPS)) and sympy.srepr(back) == sympy_srepr(found)


#: a table with ops whose torch functions cannot be written as source, and two helpers of one name
UNEXPORTABLE = '''
import importlib.util
import sys
from pathlib import Path

import torch

from lpzero.primitives import OPS, Op

ANY = ("tensors", "layers", "scalar")


def _helpers(name):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(name + ".py"))
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _scaled_by(k):
    def scaled(x):
        return x * k
    return scaled


one, two = _helpers("helpers_one"), _helpers("helpers_two")
TABLE = OPS.copy(path=f"{Path(__file__).resolve()}:TABLE")
TABLE.add(Op("twice", "x10", "elementwise", ANY, lambda x: 2 * x, lambda x: 2 * x, "2x"))
TABLE.add(Op("thrice", "x11", "elementwise", ANY, _scaled_by(3.0), lambda x: 3 * x, "3x"))
TABLE.add(Op("double", "x12", "elementwise", ANY, one.double, lambda x: 2 * x, "2x"))
TABLE.add(Op("triple", "x13", "elementwise", ANY, two.triple, lambda x: 3 * x, "3x"))
'''


@pytest.fixture(scope="module")
def unexportable(tmp_path_factory):
    folder = tmp_path_factory.mktemp("unexportable")
    (folder / "helpers_one.py").write_text("def _scale(x, k):\n    return x * k\n\n\ndef double(x):\n"
                                           "    return _scale(x, 2.0)\n")
    (folder / "helpers_two.py").write_text("def _scale(x, k):\n    return k * x\n\n\ndef triple(x):\n"
                                           "    return _scale(x, 3.0)\n")
    (folder / "table.py").write_text(UNEXPORTABLE)
    yield f"{folder / 'table.py'}:TABLE"
    for name in ("helpers_one", "helpers_two"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize("op", ["twice", "thrice"])
def test_a_lambda_or_closure_op_is_refused_in_one_line(op, unexportable):
    found = _proxy(f"layer_sum__Lw(l1__Tw({op}__Tw(W)))", 1, unexportable)
    with pytest.raises(LPZeroError, match=f"op '{op}'.*declare it as a module-level def") as e:
        torch_module(found)
    assert "\n" not in str(e.value)


def test_two_helpers_of_one_name_from_two_modules_are_refused(unexportable, tmp_path):
    # each alone exports
    for op in ("double", "triple"):
        assert "def _scale(" in torch_module(_proxy(f"layer_sum__Lw(l1__Tw({op}__Tw(W)))", 1, unexportable))
    both = _proxy("add__s(layer_sum__Lw(l1__Tw(double__Tw(W))), layer_sum__Lw(l1__Tw(triple__Tw(W))))", 1,
                  unexportable)
    with pytest.raises(LPZeroError, match="'_scale' of helpers_two and '_scale' of helpers_one") as e:
        torch_module(both)
    assert "\n" not in str(e.value)
    best = tmp_path / "best.json"
    best.write_text(json.dumps(both.best))
    result = CliRunner().invoke(main, ["export", str(best), "--format", "torch"])
    assert result.exit_code == 2 and "rename one of them" in result.output and "Traceback" not in result.output
