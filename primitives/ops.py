"""The primitive operations (the LPZero paper's Table 7; docs/concepts.md, "Primitive operations"), declared once.

Protection lives here and only here: log and sqrt clamp their argument into their
domain, reciprocal and div keep denominators away from zero, exp caps its
argument below float32 overflow. No op modifies its input. A value that still
comes out non-finite is caught by the fitness layer, which marks the proxy invalid.

Reductions and softmax-like ops act along the last axis of a `Weighted` value, with
each element counted `weight` times (see `primitives.values`), so on a sampled
tensor they estimate the full tensor's value.

`EXTENDED_OPS` are declared here too but are in no table built here: the "extended" op table
(`primitives.tables.extended_table`) adds them to this one, so the default search is unchanged.
"""
from __future__ import annotations

import sympy
import torch

from .op import Op, OpTable
from .symbolic import opaque
from .values import EPS, Weighted, masked_extreme, safe_denominator, weight_total, weighted_sum

#: exp's argument is capped here: exp(80) ~ 5.5e34 is still finite in float32
EXP_CAP = 80.0

ANY = ("tensors", "layers", "scalar")
VECTOR_MATRIX = ("tensors", "layers")


# --- element-wise ----------------------------------------------------------------

def _log(x: torch.Tensor) -> torch.Tensor:
    return torch.log(x.clamp_min(EPS))


def _abslog(x: torch.Tensor) -> torch.Tensor:
    return torch.log(x.clamp_min(EPS)).abs()


def _exp(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(x.clamp_max(EXP_CAP))


def _sqrt(x: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(x.clamp_min(0.0))


def _reciprocal(x: torch.Tensor) -> torch.Tensor:
    return 1.0 / safe_denominator(x)


def _div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a / safe_denominator(b)


# --- where the protection above changed a value (see `Op.guard`) -------------------

def _below_eps(x: torch.Tensor) -> torch.Tensor:
    return x < EPS


def _tiny_magnitude(x: torch.Tensor) -> torch.Tensor:
    return x.abs() < EPS


# --- distributions along the last axis -------------------------------------------

def _softmax(x: Weighted) -> torch.Tensor:
    shifted = x.values - masked_extreme(x, largest=True)
    e = torch.exp(shifted)
    denom = weighted_sum(x, e).unsqueeze(-1)
    return e / safe_denominator(denom)


def _log_softmax(x: Weighted) -> torch.Tensor:
    shifted = x.values - masked_extreme(x, largest=True)
    denom = weighted_sum(x, torch.exp(shifted)).unsqueeze(-1)
    return shifted - torch.log(denom.clamp_min(EPS))


def _min_max(x: Weighted) -> torch.Tensor:
    lo = masked_extreme(x, largest=False)
    hi = masked_extreme(x, largest=True)
    return (x.values - lo) / safe_denominator(hi - lo)


# --- reductions of the last axis ---------------------------------------------------

def _mean(x: Weighted) -> torch.Tensor:
    return weighted_sum(x) / safe_denominator(weight_total(x))


def _std(x: Weighted) -> torch.Tensor:
    centred = x.values - _mean(x).unsqueeze(-1)
    var = weighted_sum(x, centred * centred) / safe_denominator(weight_total(x))
    return torch.sqrt(var.clamp_min(0.0))


def _frobenius(x: Weighted) -> torch.Tensor:
    return torch.sqrt(weighted_sum(x, x.values * x.values))


def _l1(x: Weighted) -> torch.Tensor:
    return weighted_sum(x, x.values.abs())


def _layer_sum(x: Weighted) -> torch.Tensor:
    return weighted_sum(x)


def _relu_sym(x: sympy.Expr) -> sympy.Expr:
    return sympy.Max(x, 0)


# --- ops of the extended table only (`EXTENDED_OPS`) ------------------------------

def _positions(x: Weighted) -> torch.Tensor:
    """1, 2, ... counting only present entries along the last axis (absent ones repeat the count):
    a layer's position among the architecture's real layers, however the rows are padded."""
    return torch.cumsum(x.present.to(x.values.dtype), -1)


def _depth_weighted(x: Weighted) -> torch.Tensor:
    pos = _positions(x)
    depth = pos[..., -1:].clamp_min(1.0)  # an architecture without the layers: the sum is 0 anyway
    return weighted_sum(x, x.values * (pos / depth))


def _at_position(x: Weighted, last: bool) -> torch.Tensor:
    pos = _positions(x)
    at = x.present & (pos == (pos[..., -1:] if last else 1.0))
    # at most one entry per row is selected, so the sum is that value exactly (0 for an absent row)
    return torch.where(at, x.values, torch.zeros((), dtype=x.values.dtype, device=x.values.device)).sum(-1)


def _first_layer(x: Weighted) -> torch.Tensor:
    return _at_position(x, last=False)


def _last_layer(x: Weighted) -> torch.Tensor:
    return _at_position(x, last=True)


def _median(x: Weighted) -> torch.Tensor:
    """Lower weighted median: the smallest value whose cumulative weight reaches half the total
    (unit weights: `torch.median`'s choice, the lower of the two middle values)."""
    inf = torch.full((), float("inf"), dtype=x.values.dtype, device=x.values.device)
    v = torch.where(x.present, x.values, inf)  # absent entries sort last and carry no weight
    order = torch.argsort(v, dim=-1, stable=True)
    w = torch.where(x.present, x.weights.expand_as(x.values), 0.0).to(torch.float64)
    cum = torch.cumsum(torch.gather(w, -1, order), -1)  # float64: stratum weights sum exactly
    k = (cum < cum[..., -1:] / 2).sum(-1, keepdim=True).clamp_max(v.shape[-1] - 1)
    out = torch.gather(torch.gather(v, -1, order), -1, k).squeeze(-1)
    return torch.where(x.present.any(-1), out, torch.zeros_like(out))


#: ops a researcher would try beyond the paper's table (docs/concepts.md, "The extended op table"), declared as the built-in
#: ones are; in no table of their own: `lpzero.primitives.tables.extended_table` adds them to the
#: default table (registered as "extended", one of them alone as "extended:OP"). None of RPS's facts
#: holds for them (each can be negative, none is idempotent or an inverse), so none is declared.
EXTENDED_OPS: tuple[Op, ...] = (
    Op("depth_weighted", "e01", "reduce", ("layers",), _depth_weighted,
       opaque("depth_weighted", r"\sum_{l} \frac{l}{L} \left(#\right)", "odd"),
       "sum over layers of x_l l/L, l the layer's position (from 1) among the architecture's L layers"),
    Op("first_layer", "e02", "reduce", ("layers",), _first_layer,
       opaque("first_layer", r"\left(#\right)_{l=1}", "odd"), "the value of the first layer"),
    Op("last_layer", "e03", "reduce", ("layers",), _last_layer,
       opaque("last_layer", r"\left(#\right)_{l=L}", "odd"), "the value of the last layer"),
    # not odd: the lower median of -x is minus the upper median of x
    Op("median", "e04", "reduce", ("tensors", "layers"), _median,
       opaque("median", r"\operatorname{median}@\left(#\right)"),
       "lower weighted median (the smallest value with half the total weight at or below it)"),
)


def build_registry() -> OpTable:
    """The op table. Called once by `primitives.OPS`; tests may build their own."""
    r = OpTable()
    add = r.add
    # Unary, any level -> same (f01-f09, f19).
    add(Op("log", "f01", "elementwise", ANY, _log, lambda x: sympy.log(x),
           f"natural log; arguments below {EPS:g} are clamped to {EPS:g}", domain="positive",
           cancels=frozenset({"exp", "softmax"}), guard=_below_eps,
           guarded_sympy=lambda x: sympy.log(sympy.Max(x, EPS))))
    add(Op("abslog", "f02", "elementwise", ANY, _abslog, lambda x: sympy.Abs(sympy.log(x)),
           f"abs(log x); arguments below {EPS:g} are clamped to {EPS:g}", domain="positive", nonnegative=True,
           can_produce_zero=True, guard=_below_eps, guarded_sympy=lambda x: sympy.Abs(sympy.log(sympy.Max(x, EPS)))))
    add(Op("abs", "f03", "elementwise", ANY, torch.abs, sympy.Abs, "abs(x)", nonnegative=True,
           idempotent=True, identity_on_nonnegative=True))
    add(Op("square", "f04", "elementwise", ANY, torch.square, lambda x: x**2, "x^2", nonnegative=True,
           cancels=frozenset({"sqrt"})))
    add(Op("exp", "f05", "elementwise", ANY, _exp, sympy.exp, f"e^x; arguments above {EXP_CAP:g} are capped at {EXP_CAP:g}",
           nonnegative=True, cancels=frozenset({"log", "log_softmax"}), guard=lambda x: x > EXP_CAP,
           guarded_sympy=lambda x: sympy.exp(sympy.Min(x, int(EXP_CAP)))))
    add(Op("sqrt", "f06", "elementwise", ANY, _sqrt, sympy.sqrt, "sqrt(x); negative arguments count as 0",
           domain="nonnegative", nonnegative=True, cancels=frozenset({"square"}), guard=lambda x: x < 0,
           guarded_sympy=lambda x: sympy.sqrt(sympy.Max(x, 0))))
    add(Op("relu", "f07", "elementwise", ANY, torch.relu, _relu_sym, "max(x, 0)", nonnegative=True,
           can_produce_zero=True, idempotent=True, identity_on_nonnegative=True))
    add(Op("reciprocal", "f08", "elementwise", ANY, _reciprocal, lambda x: 1 / x,
           f"1/x; magnitudes below {EPS:g} are pushed to ±{EPS:g}", involution=True, denominator_args=(0,),
           guard=_tiny_magnitude))
    add(Op("neg", "f09", "elementwise", ANY, torch.neg, lambda x: -x, "-x", flips_sign=True, involution=True))
    # Reductions, vector/matrix -> one level down (f10-f12, f17, f18), plus the layer sum.
    add(Op("frobenius", "f10", "reduce", VECTOR_MATRIX, _frobenius,
           opaque("frobenius", r"\left\|#\right\|_{F@}", "even"), "Frobenius norm sqrt(sum x^2)", nonnegative=True))
    add(Op("normalized_sum", "f11", "reduce", VECTOR_MATRIX, _mean,
           opaque("normalized_sum", r"\frac{\Sigma@ #}{n@}", "odd"),
           "sum x / numel (the same value as mean; both are listed in the paper's table)"))
    add(Op("l1", "f12", "reduce", VECTOR_MATRIX, _l1, opaque("l1", r"\left\|#\right\|_{1@}", "even"),
           "L1 norm sum abs(x)", nonnegative=True))
    add(Op("mean", "f17", "reduce", VECTOR_MATRIX, _mean, opaque("mean", r"\operatorname{mean}@\left(#\right)", "odd"),
           "arithmetic mean"))
    add(Op("std", "f18", "reduce", VECTOR_MATRIX, _std, opaque("std", r"\operatorname{std}@\left(#\right)", "even"),
           "population standard deviation", nonnegative=True, can_produce_zero=True))
    add(Op("layer_sum", "sum", "reduce", ("layers",), _layer_sum, opaque("layer_sum", r"\sum_{l} #", "odd"),
           "sum over layers: how per-layer results become one score"))
    # Vector/matrix -> same (f13-f16).
    add(Op("softmax", "f13", "distribution", VECTOR_MATRIX, _softmax,
           opaque("softmax", r"\operatorname{softmax}@\left(#\right)"), "softmax over the whole tensor / over layers",
           nonnegative=True, cancels=frozenset({"log_softmax"})))
    add(Op("sigmoid", "f14", "elementwise", VECTOR_MATRIX, torch.sigmoid, lambda x: 1 / (1 + sympy.exp(-x)),
           "logistic sigmoid", nonnegative=True))
    add(Op("log_softmax", "f15", "distribution", VECTOR_MATRIX, _log_softmax,
           opaque("log_softmax", r"\log\operatorname{softmax}@\left(#\right)"), "log of softmax",
           idempotent=True, cancels=frozenset({"softmax"})))
    add(Op("min_max", "f16", "distribution", VECTOR_MATRIX, _min_max,
           opaque("min_max", r"\operatorname{minmax}@\left(#\right)"), "(x - min) / (max - min)",
           nonnegative=True, can_produce_zero=True, idempotent=True))
    # Genes of the paper genome only.
    add(Op("identity", "f19", "elementwise", ANY, lambda x: x, lambda x: x, "pass-through", typed=False))
    add(Op("prune", "f20", "genome", ANY, None, None, "removes its branch (paper genome only)", typed=False))
    # Binary, (T, T) -> T (g01-g04).
    add(Op("add", "g01", "binary", ANY, torch.add, lambda a, b: a + b, "a + b"))
    add(Op("sub", "g02", "binary", ANY, torch.sub, lambda a, b: a - b, "a - b", constant_on_equal_args=True))
    add(Op("mul", "g03", "binary", ANY, torch.mul, lambda a, b: a * b, "a * b"))
    add(Op("div", "g04", "binary", ANY, _div, lambda a, b: a / b, f"a / b; divisor magnitudes below {EPS:g} are pushed to ±{EPS:g}",
           denominator_args=(1,), constant_on_equal_args=True, guard=lambda a, b: _tiny_magnitude(b)))
    return r
