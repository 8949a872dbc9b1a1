"""Proxy trees as sympy expressions: simplified, printed as text, pretty or LaTeX.

The sympy form of every op comes from the op table (`Op.sympy_fn`); nothing here
knows op names except through it. Inputs are real symbols θ_A ... θ_S, so sympy's
simplification applies identities such as log(exp(x)) = x; reductions and softmax
are opaque sympy functions, simplified inside but never through.

`evaluate_expression` computes a sympy expression on the same `Weighted` inputs a
tree runs on, so a test can show the simplified formula scores architectures as
the tree does.
"""
from __future__ import annotations

from typing import Collection

import sympy
import torch
from deap import gp

from primitives import OPS, OpRegistry, Weighted, op_and_type
from primitives.ops import EXP_CAP
from primitives.registry import PrimitiveError
from primitives.symbolic import input_symbol
from primitives.values import EPS, reduced, safe_denominator

FORMATS = ("latex", "pretty", "text")


def tree_to_sympy(tree: gp.PrimitiveTree, ops: OpRegistry = OPS, guarded: Collection[int] = ()) -> sympy.Expr:
    """The unsimplified sympy expression of a typed tree.

    Ops at the positions in `guarded` (nodes whose protection was active, see
    `lpzero.protection`) are written with their guard, where the op table gives one.
    """

    def build(i: int) -> tuple[sympy.Expr, int]:
        node = tree[i]
        if not isinstance(node, gp.Primitive):
            return input_symbol(node.value if hasattr(node, "value") else node.name), i + 1
        op, t = op_and_type(node.name, ops)
        args, j = [], i + 1
        for _ in range(node.arity):
            expr, j = build(j)
            args.append(expr)
        if op.kind in ("reduce", "distribution"):
            return op.sympy_fn(args[0], t.level), j
        if i in guarded and op.guarded_sympy is not None:
            return op.guarded_sympy(*args), j
        return op.sympy_fn(*args), j

    expr, end = build(0)
    if end != len(tree):
        raise PrimitiveError(f"malformed tree: {tree}")
    return expr


def simplify(expr: sympy.Expr) -> sympy.Expr:
    return sympy.simplify(expr)


def format_expression(expr: sympy.Expr, fmt: str, precision: int = 3) -> str:
    """`expr` as LaTeX, pretty (unicode) or plain text; floats rounded to `precision` digits."""
    rounded = expr.xreplace({n: sympy.Float(n, precision) for n in expr.atoms(sympy.Float)})
    if fmt == "latex":
        return sympy.latex(rounded)
    if fmt == "pretty":
        return sympy.pretty(rounded, use_unicode=True)
    if fmt == "text":
        return sympy.sstr(rounded)
    raise ValueError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")


def proxy_formula(tree: gp.PrimitiveTree, orientation: int = 1, fmt: str = "text", ops: OpRegistry = OPS,
                  guarded: Collection[int] = ()) -> str:
    """The simplified formula of a found proxy, negated if it ranks in reverse (`guarded`: see `tree_to_sympy`)."""
    return format_expression(simplify(orientation * tree_to_sympy(tree, ops, guarded)), fmt)


# --- evaluating a sympy expression on Weighted inputs -------------------------------

def _as_tensor(v):
    return v.values if isinstance(v, Weighted) else v


def _wrap(template, out: torch.Tensor):
    return template.with_values(out) if isinstance(template, Weighted) else out


def evaluate_expression(expr: sympy.Expr, inputs: dict[str, Weighted], ops: OpRegistry = OPS):
    """Scores of a sympy proxy expression on `inputs` (same semantics as the tree)."""

    def ev(e: sympy.Expr):
        if e.is_Number:
            return float(e)
        if isinstance(e, sympy.Symbol):
            return inputs[e.name.removeprefix("theta_")]
        name = getattr(type(e), "op_name", None)
        if name is not None:
            op = ops[name]
            x = ev(e.args[0])
            if op.kind == "reduce":
                return reduced(x, op.torch_fn(x)) if type(e).level == "tensors" else op.torch_fn(x)
            return x.with_values(op.torch_fn(x))
        args = [ev(a) for a in e.args]
        template = next((a for a in args if isinstance(a, Weighted)), None)
        vals = [_as_tensor(a) for a in args]
        if isinstance(e, sympy.Add):
            out = vals[0]
            for v in vals[1:]:
                out = out + v
        elif isinstance(e, sympy.Mul):
            out = vals[0]
            for v in vals[1:]:
                out = out * v
        elif isinstance(e, sympy.Pow):
            base, exp = vals[0], float(e.args[1])
            if exp == 0.5:
                out = torch.sqrt(torch.as_tensor(base).clamp_min(0.0))
            elif exp < 0:
                out = (1.0 / safe_denominator(torch.as_tensor(base))) ** (-exp)
            else:
                out = torch.as_tensor(base) ** exp
        elif isinstance(e, sympy.log):
            out = torch.log(torch.as_tensor(vals[0]).clamp_min(EPS))
        elif isinstance(e, sympy.exp):
            out = torch.exp(torch.as_tensor(vals[0]).clamp_max(EXP_CAP))
        elif isinstance(e, sympy.Abs):
            out = torch.as_tensor(vals[0]).abs()
        elif isinstance(e, (sympy.Max, sympy.Min)):
            pick = torch.maximum if isinstance(e, sympy.Max) else torch.minimum
            out = torch.as_tensor(vals[0])
            for v in vals[1:]:
                out = pick(out, torch.as_tensor(v))
        else:
            raise PrimitiveError(f"cannot evaluate sympy node {type(e).__name__}")
        return _wrap(template, out) if template is not None else out

    out = ev(expr)
    if isinstance(out, Weighted):
        raise PrimitiveError("expression does not reduce to one score per architecture")
    return out


__all__ = ["FORMATS", "evaluate_expression", "format_expression", "proxy_formula", "simplify", "tree_to_sympy"]
