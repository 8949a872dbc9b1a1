import json
import random
from collections import Counter

import sympy
import torch
from deap import gp

from lpzero.report.export import (evaluate_expression, format_expression, found_formula, proxy_formula, simplify,
                                  tree_to_sympy)
from lpzero.report.protection import active_nodes, describe, guard_activity
from lpzero.search.rps import violations
from lpzero.primitives import INPUT_SYMBOLS, OPS, build_primitive_set, generate_typed, op_table, pset_of
from lpzero.proxies.found_proxy import PRIMITIVE_SET_VERSION, FoundProxy
from synthetic import synthetic_inputs

PSET = build_primitive_set(OPS)


def test_log_exp_simplifies_away():
    t = gp.PrimitiveTree.from_string("layer_sum__Lw(mean__Tw(log__Tw(exp__Tw(W))))", PSET)
    assert proxy_formula(t) == "layer_sum_l(mean(theta_W))"
    assert proxy_formula(t, fmt="latex") == r"\sum_{l} \operatorname{mean}\left(\theta_{W}\right)"


def test_reverse_orientation_is_a_minus_sign():
    t = gp.PrimitiveTree.from_string("layer_sum__Lw(l1__Tw(W))", PSET)
    assert proxy_formula(t, -1).startswith("-")


def test_latex_precision_is_controlled():
    assert format_expression(sympy.Float(3.14159265) * sympy.Symbol("x"), "text", precision=3) == "3.14*x"


def test_simplified_formula_scores_like_the_tree():
    # Positive inputs keep protected ops inside their domain, where tree and formula must agree.
    raw = synthetic_inputs(n_arch=6, samples=32, seed=3, dtype=torch.float64)
    inputs = {s: v.with_values(v.values.abs() + 0.5) for s, v in raw.items()}
    rng = random.Random(7)
    checked = 0
    while checked < 150:
        t = gp.PrimitiveTree(generate_typed(PSET, 2, 5, rng=rng))
        if violations(t):
            continue
        a = gp.compile(t, PSET)(*[inputs[s] for s in INPUT_SYMBOLS])
        if not torch.isfinite(a).all() or a.abs().max() > 1e30:
            continue
        b = torch.as_tensor(evaluate_expression(simplify(tree_to_sympy(t)), inputs), dtype=a.dtype).expand_as(a)
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-9), (str(t), a, b)
        checked += 1


def test_minus_signs_move_out_of_sums_and_vanish_inside_norms():
    t = gp.PrimitiveTree.from_string("layer_sum__Lw(neg__Lw(frobenius__Tw(neg__Tw(W))))", PSET)
    assert proxy_formula(t, -1) == "layer_sum_l(frobenius(theta_W))"


def test_powers_of_reductions_keep_their_exponent_in_latex():
    t = gp.PrimitiveTree.from_string("layer_sum__Lw(square__Lw(l1__Tw(W)))", PSET)
    assert proxy_formula(t, fmt="latex") == r"\sum_{l} \left(\left\|\theta_{W}\right\|_{1}\right)^{2}"


def test_guarded_formula_scores_like_the_tree_on_any_inputs():
    # Unrestricted inputs (negatives, zeros, large magnitudes) make log, sqrt and exp lean on
    # their protection; with the active guards written out the formula still scores as the tree.
    raw = synthetic_inputs(n_arch=6, samples=32, seed=5, dtype=torch.float64)
    inputs = {s: v.with_values(v.values * (60.0 if s in "AH" else 1.0)) for s, v in raw.items()}
    rng = random.Random(11)
    checked, guarded_ops = 0, Counter()
    while checked < 150:
        t = gp.PrimitiveTree(generate_typed(PSET, 2, 5, rng=rng))
        if violations(t):
            continue
        a = gp.compile(t, PSET)(*[inputs[s] for s in INPUT_SYMBOLS])
        if not torch.isfinite(a).all() or a.abs().max() > 1e200 or a.min() == a.max():
            continue  # invalid proxies are never exported (a constant one may be e^80 x rounding noise)
        activity = guard_activity(t, PSET, inputs)
        active = active_nodes([g.to_dict() for g in activity])
        if any(OPS[g.op].guarded_sympy is None for g in activity if g.node in active):
            continue  # no closed form (a denominator pushed to ±1e-12); the report names it instead
        b = evaluate_expression(simplify(tree_to_sympy(t, guarded=active)), inputs)
        b = torch.as_tensor(b, dtype=a.dtype).expand_as(a)
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-9), (str(t), active, a, b)
        checked += 1
        guarded_ops.update(g.op for g in activity if g.node in active)
    assert {"log", "exp", "sqrt"} <= set(guarded_ops), guarded_ops


def test_capped_exp_is_reported_and_written_out():
    inputs = synthetic_inputs(n_arch=4, samples=16, seed=2, dtype=torch.float64)
    t = gp.PrimitiveTree.from_string("layer_sum__Lh(exp__Lh(l1__Th(H)))", PSET)
    big = {**inputs, "H": inputs["H"].with_values(inputs["H"].values.abs() * 100 + 10)}
    (capped,) = guard_activity(t, PSET, big)
    assert (capped.op, capped.node, capped.active_fraction, capped.architectures) == ("exp", 1, 1.0, 4)
    assert proxy_formula(t, guarded=active_nodes([capped.to_dict()])) == "layer_sum_l(exp(Min(80, l1(theta_H))))"
    small = {**inputs, "H": inputs["H"].with_values(inputs["H"].values * 1e-3)}
    (idle,) = guard_activity(t, PSET, small)
    assert idle.active_fraction == 0 and not active_nodes([idle.to_dict()])
    assert proxy_formula(t, guarded=active_nodes([idle.to_dict()])) == "layer_sum_l(exp(l1(theta_H)))"


def test_log_guard_counts_the_clamped_values():
    inputs = synthetic_inputs(n_arch=3, samples=64, seed=4, dtype=torch.float64)
    t = gp.PrimitiveTree.from_string("layer_sum__Lw(mean__Tw(log__Tw(W)))", PSET)
    (g,) = guard_activity(t, PSET, inputs)
    w = inputs["W"]
    expected = float(((w.values < 1e-12) & w.present).sum()) / float(w.present.sum())
    assert g.active_fraction == expected and 0 < expected < 1


def test_report_names_guards_the_formula_cannot_show():
    row = {"node": 2, "op": "div", "subtree": "div__Lw(W, W)", "active_fraction": 0.5, "architectures": 1, "of": 2}
    assert "not shown in the formula" in describe([row]) and "written out" not in describe([row])
    assert "written out in the formula" in describe([{**row, "op": "exp", "subtree": "exp__Lw(W)"}])
    assert describe([{**row, "architectures": 0}]).startswith("No protected op changed a value")


#: a module with its own op table: the built-in ops plus a protected log2 (clamped like log)
LOG2_TABLE = '''
from pathlib import Path

import sympy
import torch

from lpzero.primitives import OPS, Op

def _log2(x):
    return torch.log2(x.clamp_min(1e-12))

TABLE = OPS.copy(path=f"{Path(__file__).resolve()}:TABLE")
TABLE.add(Op("log2", "x03", "elementwise", ("tensors", "layers", "scalar"), _log2, lambda x: sympy.log(x, 2),
             "log base 2, clamped like log", domain="positive", guard=lambda x: x < 1e-12,
             guarded_sympy=lambda x: sympy.log(sympy.Max(x, 1e-12), 2)))
'''


def test_a_found_proxy_exports_and_reports_guards_with_its_own_op_table(tmp_path):
    (tmp_path / "log2_ops.py").write_text(LOG2_TABLE)
    table = op_table(f"{tmp_path / 'log2_ops.py'}:TABLE")
    text = "layer_sum__Lw(mean__Tw(log2__Tw(W)))"
    tree = gp.PrimitiveTree.from_string(text, pset_of(table))
    (g,) = guard_activity(tree, pset_of(table), synthetic_inputs(n_arch=3, samples=64, seed=4), table)
    assert g.op == "log2" and g.architectures > 0  # W has negative values: the clamp is active
    (tmp_path / "best.json").write_text(json.dumps({"tree": text, "primitive_set_version": PRIMITIVE_SET_VERSION,
                                                    "ops": table.path, "protection": [g.to_dict()]}))
    found = FoundProxy.load(tmp_path)
    assert found.ops is table
    assert found_formula(found, "text") == proxy_formula(tree, 1, "text", table, active_nodes([g.to_dict()]))
    assert "Max(1.0e-12, theta_W)" in found_formula(found, "text")
    assert "written out in the formula" in describe([g.to_dict()], table)
