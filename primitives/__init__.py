"""Typed primitive operations of proxy trees.

- `OPS`: the op table (`primitives.ops.build_registry`), one entry per op.
- `INPUTS`: the six terminals A, J, G, H, W, S and their marker types.
- `build_primitive_set()`: the DEAP `PrimitiveSetTyped` over both.
"""
from __future__ import annotations

from .ops import build_registry
from .pset import build_primitive_set, generate_typed, op_and_type
from .registry import Op, OpRegistry, PrimitiveError
from .types import FAMILIES, INPUT_SYMBOLS, INPUTS, InputSpec, Scalar
from .values import Weighted

#: the op table; a module-level constant built from declarations, no I/O
OPS: OpRegistry = build_registry()

__all__ = [
    "FAMILIES",
    "INPUTS",
    "INPUT_SYMBOLS",
    "InputSpec",
    "OPS",
    "Op",
    "OpRegistry",
    "PrimitiveError",
    "Scalar",
    "Weighted",
    "build_primitive_set",
    "generate_typed",
    "op_and_type",
]
