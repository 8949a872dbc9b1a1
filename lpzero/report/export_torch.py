"""A found proxy as a standalone torch module, and as a sympy `srepr` string (`lpzero export --format`).

`torch_module(proxy)` writes Python source that imports torch only and defines
`proxy(A, J, G, H, W, S)`: each argument a list of tensors, one per layer (as
`lpzero.benchmarks.inputs.extract_inputs` lists them; unused ones may be None), the
result the score `FoundProxy.score_inputs` gives. The text of each op is in one table,
`TORCH_OPS` (as PySR keeps one table per export target; `EXTENDED_TORCH_OPS` for the ops of the
"extended" op table); its guards are the op table's
protection exactly (`lpzero.primitives.ops`, `values`). On full tensors every element
weight of `primitives.values.Weighted` is 1 and every element present, so weighted
reductions are plain sums and counts; inputs are read in float32, as lpzero reads them.
"""
from __future__ import annotations

import sympy
from deap import gp

from lpzero.errors import LPZeroError
from lpzero.primitives import INPUT_SYMBOLS, OpRegistry, op_and_type
from lpzero.primitives.ops import EXP_CAP
from lpzero.primitives.values import EPS
from lpzero.proxies.found_proxy import FoundProxy

from .export import simplify, tree_to_sympy
from .protection import active_nodes

#: op name -> (parameters, torch expression): element-wise/binary ops on tensors of any shape,
#: reductions and distributions on one 1-D tensor (one layer's elements, or the per-layer values)
TORCH_OPS: dict[str, tuple[str, str]] = {
    "log": ("x", "torch.log(x.clamp_min(EPS))"),
    "abslog": ("x", "torch.log(x.clamp_min(EPS)).abs()"),
    "abs": ("x", "torch.abs(x)"),
    "square": ("x", "torch.square(x)"),
    "exp": ("x", "torch.exp(x.clamp_max(EXP_CAP))"),
    "sqrt": ("x", "torch.sqrt(x.clamp_min(0.0))"),
    "relu": ("x", "torch.relu(x)"),
    "reciprocal": ("x", "1.0 / _safe(x)"),
    "neg": ("x", "torch.neg(x)"),
    "sigmoid": ("x", "torch.sigmoid(x)"),
    "identity": ("x", "x"),
    "add": ("a, b", "torch.add(a, b)"),
    "sub": ("a, b", "torch.sub(a, b)"),
    "mul": ("a, b", "torch.mul(a, b)"),
    "div": ("a, b", "a / _safe(b)"),
    "frobenius": ("v", "torch.sqrt((v * v).sum(-1))"),
    "normalized_sum": ("v", "_mean(v)"),
    "mean": ("v", "_mean(v)"),
    "l1": ("v", "v.abs().sum(-1)"),
    "std": ("v", "torch.sqrt((((v - _mean(v)) * (v - _mean(v))).sum(-1) / _safe(_count(v))).clamp_min(0.0))"),
    "layer_sum": ("v", "v.sum(-1)"),
    "softmax": ("v", "torch.exp(v - _max(v)) / _safe(torch.exp(v - _max(v)).sum(-1))"),
    "log_softmax": ("v", "(v - _max(v)) - torch.log(torch.exp(v - _max(v)).sum(-1).clamp_min(EPS))"),
    "min_max": ("v", "(v - _min(v)) / _safe(_max(v) - _min(v))"),
}

#: the same for the ops of the "extended" table only (`lpzero.primitives.ops.EXTENDED_OPS`); kept apart
#: so that `TORCH_OPS` stays exactly the built-in table's
EXTENDED_TORCH_OPS: dict[str, tuple[str, str]] = {
    "depth_weighted": ("v", "(v * (torch.arange(1, v.shape[-1] + 1, dtype=v.dtype) / v.shape[-1])).sum(-1)"),
    "first_layer": ("v", "v[0]"),
    "last_layer": ("v", "v[-1]"),
    # sorted as lpzero sorts (NaN last), the lower of the two middle values
    "median": ("v", "torch.sort(v).values[(v.shape[-1] - 1) // 2]"),
}

#: the module's fixed part: constants and helpers the table's texts use
_HEADER = f'''"""Proxy exported by `lpzero export --format torch`: {{formula}}

Tree: {{tree}}
proxy(A, J, G, H, W, S): each argument a list of tensors, one per layer (unused ones may be None).
"""
import torch

EPS = {EPS!r}
EXP_CAP = {EXP_CAP!r}
ORIENTATION = {{orientation}}


def _safe(x):
    # magnitudes below EPS pushed to +-EPS (0 -> +EPS), as lpzero's protected denominators
    x = torch.as_tensor(x, dtype=torch.float32)
    return torch.where(x.abs() < EPS, torch.where(x < 0, -1.0, 1.0) * EPS, x)


def _count(v):
    return torch.tensor(float(v.shape[-1]))


def _mean(v):
    return v.sum(-1) / _safe(_count(v))


def _max(v):
    m = v.max()
    return torch.where(torch.isfinite(m), m, torch.zeros_like(m))


def _min(v):
    m = v.min()
    return torch.where(torch.isfinite(m), m, torch.zeros_like(m))


def _layers(name, tensors):
    # one flat float32 tensor per layer, as lpzero reads full inputs
    if not tensors:
        raise ValueError(f"proxy input {{{{name}}}} is empty: this proxy reads it")
    return [torch.as_tensor(t).detach().reshape(-1).to(torch.float32) for t in tensors]
'''


def _op_function(name: str) -> str:
    known = {**TORCH_OPS, **EXTENDED_TORCH_OPS}
    if name not in known:
        raise LPZeroError(f"op {name!r} has no torch export (known: {', '.join(known)})")
    params, body = known[name]
    return f"\n\ndef op_{name}({params}):\n    return {body}\n"


def _expression(tree: gp.PrimitiveTree, ops: OpRegistry) -> tuple[str, list[str]]:
    """The Python expression of `tree` over per-layer lists, and the op names it uses.

    Tensors level: a list of 1-D tensors (element-wise ops map over it, reductions stack one
    value per layer); layers level: a 1-D tensor of per-layer values; scalar: a 0-d tensor.
    """
    used: list[str] = []

    def build(i: int) -> tuple[str, int]:
        node = tree[i]
        if not isinstance(node, gp.Primitive):
            return (node.value if hasattr(node, "value") else node.name), i + 1
        op, t = op_and_type(node.name, ops)
        if op.name not in used:
            used.append(op.name)
        args, j = [], i + 1
        for _ in range(node.arity):
            text, j = build(j)
            args.append(text)
        fn = f"op_{op.name}"
        if t.level != "tensors":
            return f"{fn}({', '.join(args)})", j
        if op.kind == "reduce":
            return f"torch.stack([{fn}(t) for t in {args[0]}])", j
        if node.arity == 2:
            return f"[{fn}(a, b) for a, b in zip({args[0]}, {args[1]})]", j
        return f"[{fn}(t) for t in {args[0]}]", j

    text, end = build(0)
    if end != len(tree):
        raise LPZeroError(f"malformed tree: {tree}")
    return text, used


def torch_module(proxy: FoundProxy) -> str:
    """Source of a module (imports torch only) whose `proxy(A, J, G, H, W, S)` is `proxy`'s score."""
    text, used = _expression(proxy.parsed, proxy.ops)
    read = [s for s in INPUT_SYMBOLS if s in proxy.inputs_needed]
    body = "".join(_op_function(name) for name in used)
    lines = ["", "", "def proxy(A, J, G, H, W, S):",
             '    """The score of one architecture (higher = better), as lpzero computes it."""']
    lines += [f"    {s} = _layers({s!r}, {s})" for s in read]
    lines += ["    with torch.no_grad():", f"        return float(ORIENTATION * {text})", ""]
    header = _HEADER.format(formula=proxy.best.get("formula", proxy.tree), tree=proxy.tree,
                            orientation=proxy.orientation)
    return header + body + "\n".join(lines)


def sympy_namespace(ops: OpRegistry) -> dict[str, type]:
    """Names -> the opaque sympy functions of `ops`' reductions and distributions: the `locals`
    that make `sympy.sympify` of an exported `srepr` string give the exported expression back."""
    names = {}
    for op in ops:
        if op.kind in ("reduce", "distribution") and op.sympy_fn is not None:
            for level in op.levels:
                cls = type(op.sympy_fn(sympy.Symbol("x"), level))
                if isinstance(cls, type) and issubclass(cls, sympy.Function):
                    names[cls.__name__] = cls
    return names


def sympy_srepr(proxy: FoundProxy) -> str:
    """The simplified, oriented formula (guards active on the search sample written out) as
    `sympy.srepr`; `sympy.sympify(text, locals=sympy_namespace(ops))` reads it back."""
    guarded = active_nodes(list(proxy.protection))
    return sympy.srepr(simplify(proxy.orientation * tree_to_sympy(proxy.parsed, proxy.ops, guarded)))


__all__ = ["EXTENDED_TORCH_OPS", "TORCH_OPS", "sympy_namespace", "sympy_srepr", "torch_module"]
