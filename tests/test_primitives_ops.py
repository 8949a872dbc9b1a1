import random

import pytest
import sympy
import torch
from deap import gp

from lpzero.primitives import INPUT_SYMBOLS, OPS, OpTable, PrimitiveError, Weighted, build_primitive_set, generate_typed
from lpzero.primitives.op import Op
from lpzero.primitives.symbolic import input_symbol
from lpzero.primitives.types import FAMILIES, Scalar
from synthetic import synthetic_inputs

PAPER_IDS = [f"f{i:02d}" for i in range(1, 21)] + [f"g{i:02d}" for i in range(1, 5)]


def test_every_paper_op_declared_once():
    ids = [op.paper_id for op in OPS]
    for pid in PAPER_IDS:
        assert ids.count(pid) == 1, pid


def test_registry_refuses_duplicate_names():
    r = OpTable()
    r.add(Op("x", "f99", "elementwise", ("scalar",), torch.neg, lambda a: -a, "test"))
    with pytest.raises(PrimitiveError, match="declared twice"):
        r.add(Op("x", "f98", "elementwise", ("scalar",), torch.abs, sympy.Abs, "test"))


def test_malformed_op_is_refused():
    with pytest.raises(PrimitiveError, match="no scalar level"):
        Op("bad", "f97", "reduce", ("scalar",), None, None, "a reduction of a scalar")


PROBES = torch.tensor([0.0, -0.0, -1.5, -1e6, 1e-8, 0.5, 2.0, 1e6], dtype=torch.float64)


@pytest.mark.parametrize("op", [op for op in OPS if op.kind == "elementwise"], ids=lambda op: op.name)
def test_elementwise_op_on_zeros_negatives_and_large_values(op):
    x = PROBES.clone()
    out = op.torch_fn(x)
    assert torch.equal(x, PROBES), "ops must not modify their input"
    assert torch.isfinite(out).all() or op.name in ("square",), f"{op.name} returned {out}"
    # Where the op is not protected (inside its domain, away from caps) it equals its sympy form.
    s = sympy.Symbol("x", real=True)
    f = sympy.lambdify(s, op.sympy_fn(s), "math")
    for xi, yi in zip(x.tolist(), out.tolist()):
        inside = {"positive": xi > 1e-6, "nonnegative": xi >= 0, "any": True}[op.domain]
        if op.name == "reciprocal":
            inside = abs(xi) > 1e-6
        if op.name == "exp":
            inside = xi < 80
        if inside and abs(xi) < 1e5:
            assert yi == pytest.approx(f(xi), rel=1e-9, abs=1e-12), (op.name, xi)


def test_binary_ops_match_sympy_and_div_is_protected():
    a = PROBES.clone()
    b = PROBES.flip(0).clone()
    for name in ("add", "sub", "mul", "div"):
        op = OPS[name]
        out = op.torch_fn(a, b)
        assert torch.isfinite(out).all() or name == "mul"
        x, y = sympy.symbols("x y", real=True)
        f = sympy.lambdify((x, y), op.sympy_fn(x, y), "math")
        for ai, bi, oi in zip(a.tolist(), b.tolist(), out.tolist()):
            if name != "div" or abs(bi) > 1e-6:
                assert oi == pytest.approx(f(ai, bi), rel=1e-9)
    assert torch.equal(a, PROBES)


def test_weighted_reductions_estimate_the_full_tensor():
    full = torch.randn(1, 1, 4096, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sample = Weighted.from_weights(full[..., :1024], torch.full((1, 1, 1), 4.0, dtype=torch.float64))
    exact = Weighted.from_weights(full, torch.ones(1, 1, 1, dtype=torch.float64))
    for name, tol in (("mean", 0.1), ("std", 0.05), ("frobenius", 0.05), ("l1", 0.05)):
        est, ref = OPS[name].torch_fn(sample), OPS[name].torch_fn(exact)
        assert est.item() == pytest.approx(ref.item(), rel=tol, abs=0.05), name
    # softmax over a sample sums (with weights) to one, as over the full tensor
    sm = OPS["softmax"].torch_fn(sample)
    assert (sm * sample.weights).sum().item() == pytest.approx(1.0)


def test_absent_layers_do_not_count():
    x = Weighted.from_weights(torch.tensor([[[1.0, 1.0], [100.0, 100.0]]]), torch.tensor([[[1.0], [0.0]]]))
    assert OPS["l1"].torch_fn(x).tolist() == [[2.0, 0.0]]


def test_no_cross_family_binary_primitive():
    pset = build_primitive_set(OPS)
    for prims in pset.primitives.values():
        for p in prims:
            if len(p.args) == 2:
                assert p.args[0] is p.args[1] and p.ret is p.args[0]


@pytest.mark.slow
def test_thousands_of_generated_trees_evaluate_without_shape_errors():
    pset = build_primitive_set(OPS)
    inputs = synthetic_inputs(n_arch=7, samples=16)
    args = [inputs[s] for s in INPUT_SYMBOLS]
    rng = random.Random(0)
    for _ in range(3000):
        tree = gp.PrimitiveTree(generate_typed(pset, 1, 7, rng=rng))
        out = gp.compile(tree, pset)(*args)
        assert out.shape == (7,), str(tree)


def test_every_type_has_a_tree():
    pset = build_primitive_set(OPS)
    for tensor_type, layer_type in FAMILIES.values():
        for t in (tensor_type, layer_type, Scalar):
            assert generate_typed(pset, 0, 3, type_=t, rng=random.Random(1))


def test_input_symbols_are_real():
    assert input_symbol("W").is_real
