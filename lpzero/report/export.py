"""Proxy trees as sympy expressions: simplified, printed as text, pretty or LaTeX.

The sympy form of every op comes from the op table (`Op.sympy_fn`); nothing here
knows op names except through it. Inputs are real symbols θ_A ... θ_S, so sympy's
simplification applies identities such as log(exp(x)) = x; reductions and softmax
are opaque sympy functions, simplified inside but never through.

`evaluate_expression` computes a sympy expression on the same `Weighted` inputs a
tree runs on (`sympy.lambdify` with a module map derived from the op table, as
PySR exports to torch), so a test can show the simplified formula scores
architectures as the tree does.
"""
from __future__ import annotations

import functools
from typing import Callable, Collection

import sympy
import torch
from deap import gp
from sympy.printing.lambdarepr import LambdaPrinter

from lpzero.errors import UnknownNameError
from lpzero.primitives import INPUT_SYMBOLS, OPS, Kind, Level, OpTable, PrimitiveError, Weighted, op_and_type
from lpzero.primitives.symbolic import input_symbol
from lpzero.primitives.values import safe_denominator
from lpzero.proxies.found_proxy import FoundProxy

from .protection import active_nodes

FORMATS = ("latex", "pretty", "text")


def tree_to_sympy(tree: gp.PrimitiveTree, ops: OpTable = OPS, guarded: Collection[int] = ()) -> sympy.Expr:
    """The unsimplified sympy expression of a typed tree.

    Ops at the positions in `guarded` (nodes whose protection was active, see
    `lpzero.report.protection`) are written with their guard, where the op table gives one.
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
        if op.kind in (Kind.REDUCE, Kind.DISTRIBUTION):
            return op.sympy_fn(args[0], t.level), j
        if i in guarded and op.guarded_sympy is not None:
            return op.guarded_sympy(*args), j
        return op.sympy_fn(*args), j

    expr, end = build(0)
    if end != len(tree):
        raise PrimitiveError(f"malformed tree: {tree}")
    return expr


@functools.lru_cache(maxsize=1024)
def simplify(expr: sympy.Expr) -> sympy.Expr:
    """`sympy.simplify`, remembered: a report prints one tree as text and as LaTeX, and the hall of fame
    and the complexity front share trees (simplifying is most of a report's time)."""
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
    raise UnknownNameError("format", fmt, FORMATS)


def proxy_formula(tree: gp.PrimitiveTree, orientation: int = 1, fmt: str = "text", ops: OpTable = OPS,
                  guarded: Collection[int] = ()) -> str:
    """The simplified formula of a found proxy, negated if it ranks in reverse (`guarded`: see `tree_to_sympy`)."""
    return format_expression(simplify(orientation * tree_to_sympy(tree, ops, guarded)), fmt)


def found_formula(proxy: FoundProxy, fmt: str = "latex") -> str:
    """The simplified formula of a found proxy (`lpzero export`), read with its own op table; the
    guards active on its search sample are written out, as the search's report writes them."""
    return proxy_formula(proxy.parsed, proxy.orientation, fmt, proxy.ops, active_nodes(list(proxy.protection)))


# --- evaluating a sympy expression on Weighted inputs -------------------------------

class _CallPrinter(LambdaPrinter):
    """Prints sums, products and powers as calls (`add`, `mul`, `power`), so they run on
    `Weighted` values and protected powers keep the tree's semantics."""

    def _print_Add(self, expr, order=None) -> str:
        return f"add({', '.join(self._print(a) for a in expr.args)})"

    def _print_Mul(self, expr) -> str:
        return f"mul({', '.join(self._print(a) for a in expr.args)})"

    def _print_Pow(self, expr, rational=False) -> str:
        return f"power({self._print(expr.base)}, {self._print(expr.exp)})"


def _on_values(fn: Callable) -> Callable:
    """`fn` of tensors applied to numbers, tensors or the values of `Weighted` arguments."""

    def apply(*args):
        template = next((a for a in args if isinstance(a, Weighted)), None)
        out = fn(*(torch.as_tensor(a.values if isinstance(a, Weighted) else a) for a in args))
        return out if template is None else template.with_values(out)

    return apply


def _power(base: torch.Tensor, exp: torch.Tensor) -> torch.Tensor:
    # as the ops: x^(1/2) is sqrt (negatives count as 0), x^(-k) keeps x off zero like 1/x
    if float(exp) == 0.5:
        return torch.sqrt(base.clamp_min(0.0))
    if float(exp) < 0:
        return (1.0 / safe_denominator(base)) ** (-float(exp))
    return base ** float(exp)


@functools.lru_cache(maxsize=4)
def lambdify_modules(ops: OpTable = OPS) -> dict[str, Callable]:
    """Names in printed formulas -> their runtime functions, derived from the op table.

    Reductions and distributions print as their opaque functions (`mean` per layer,
    `mean_l` across layers); an element-wise op whose sympy form is a one-argument sympy
    function (log, exp, Abs) maps that function's name to the op's protected torch form.
    Max and Min (relu and the written-out guards) and arithmetic are element-wise.
    """
    table: dict[str, Callable] = {
        "add": _on_values(lambda *xs: functools.reduce(torch.add, xs)),
        "mul": _on_values(lambda *xs: functools.reduce(torch.mul, xs)),
        "power": _on_values(_power),
        "Max": _on_values(lambda *xs: functools.reduce(torch.maximum, xs)),
        "Min": _on_values(lambda *xs: functools.reduce(torch.minimum, xs)),
    }
    probe = sympy.Symbol("x", real=True)
    for op in ops:
        if op.kind in (Kind.REDUCE, Kind.DISTRIBUTION):
            for level, suffix in ((Level.TENSORS, ""), (Level.LAYERS, "_l")):
                if level in op.levels:
                    table[op.name + suffix] = op.runtime(level)
        elif op.kind == Kind.ELEMENTWISE and op.sympy_fn is not None and op.typed:
            form = op.sympy_fn(probe)
            if isinstance(form, sympy.Function) and form.args == (probe,):
                table[type(form).__name__] = _on_values(op.torch_fn)
    return table


def evaluate_expression(expr: sympy.Expr, inputs: dict[str, Weighted], ops: OpTable = OPS) -> torch.Tensor:
    """Scores of a sympy proxy expression on `inputs` (same semantics as the tree)."""
    symbols = [input_symbol(s) for s in INPUT_SYMBOLS]
    modules = lambdify_modules(ops)
    printer = _CallPrinter({"fully_qualified_modules": False, "inline": True, "allow_unknown_functions": True,
                            "user_functions": {name: name for name in modules}})
    func = sympy.lambdify(symbols, expr, modules=[modules], printer=printer)
    try:
        out = func(*[inputs[s] for s in INPUT_SYMBOLS])
    except NameError as e:
        raise PrimitiveError(f"cannot evaluate {expr}: {e}") from None
    if isinstance(out, Weighted):
        raise PrimitiveError("expression does not reduce to one score per architecture")
    return out


__all__ = ["FORMATS", "evaluate_expression", "format_expression", "found_formula", "lambdify_modules", "proxy_formula",
           "simplify", "tree_to_sympy"]
