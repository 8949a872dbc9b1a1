import random

import sympy
import torch
from deap import gp

from lpzero.export import evaluate_expression, format_expression, proxy_formula, simplify, tree_to_sympy
from lpzero.rps import violations
from primitives import INPUT_SYMBOLS, OPS, build_primitive_set, generate_typed
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
