"""Sympy forms of ops that sympy has no function for (norms, softmax, layer sums).

Each such op becomes an undefined sympy `Function` per level, so sympy simplifies
inside it (`mean(log(exp(x)))` -> `mean(x)`) but never through it, and prints it
with the op's own LaTeX. The per-layer form of an op is named without a suffix
(`mean`), its across-layers form with `_l` (`mean_l`).
"""
from __future__ import annotations

import functools

import sympy


@functools.lru_cache(maxsize=None)
def opaque_function(name: str, level: str, latex: str, parity: str | None = None) -> type[sympy.Function]:
    """The sympy Function class for op `name` applied at `level`.

    `latex` is a template with `#` for the argument and `@` where, at the layers
    level, a subscript `l` marks that the op runs across layers. `parity` "odd"
    (f(-x) = -f(x): sums, means) or "even" (f(-x) = f(x): norms, std) lets sympy
    move a minus sign out of the function.
    """
    suffix = "_l" if level == "layers" else ""

    def _latex(self, printer, exp=None, **kwargs) -> str:
        body = latex.replace("#", printer._print(self.args[0])).replace("@", "_{l}" if level == "layers" else "")
        # sympy's printer hands a power of a function to the function itself
        return body if exp is None else rf"\left({body}\right)^{{{exp}}}"

    def _sympystr(self, printer, *args, **kwargs) -> str:
        return f"{name}{suffix}({printer._print(self.args[0])})"

    def eval(cls, arg):
        if parity is not None and arg.could_extract_minus_sign():
            return -cls(-arg) if parity == "odd" else cls(-arg)
        return None

    cls = type(
        name + suffix,
        (sympy.Function,),
        {"nargs": 1, "_latex": _latex, "_sympystr": _sympystr, "op_name": name, "level": level,
         "eval": classmethod(eval)},
    )
    return cls


def opaque(name: str, latex: str, parity: str | None = None):
    """A `sympy_fn` for an op without a sympy equivalent (parity: see `opaque_function`)."""

    def build(arg: sympy.Expr, level: str) -> sympy.Expr:
        return opaque_function(name, level, latex, parity)(arg)

    return build


def input_symbol(symbol: str) -> sympy.Symbol:
    """θ_X as a real sympy symbol (real, so log(exp(x)) simplifies to x)."""
    return sympy.Symbol(f"theta_{symbol}", real=True)
