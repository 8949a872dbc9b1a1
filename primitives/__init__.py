"""Typed primitive operations of proxy trees (the bottom layer; installed as `lpzero.primitives`).

- `OPS`: the op table (`lpzero.primitives.ops.build_registry`), one entry per op.
- `INPUTS`: the six terminals A, J, G, H, W, S and their marker types.
- `build_primitive_set()`: the DEAP `PrimitiveSetTyped` over both; `parse_tree`
  reads a tree back from its text.
"""
from __future__ import annotations

import functools

from deap import gp

from .ops import build_registry
from .pset import build_primitive_set, generate_typed, op_and_type, parse_tree, tree_inputs
from .registry import Kind, Level, Op, OpRegistry, PrimitiveError, UnknownOpError
from .types import FAMILIES, INPUT_SYMBOLS, INPUTS, InputSpec, Scalar
from .values import Weighted

#: the op table; a module-level constant built from declarations, no I/O
OPS: OpRegistry = build_registry()


@functools.lru_cache(maxsize=1)
def default_pset() -> gp.PrimitiveSetTyped:
    """The primitive set of `OPS`, built on first use and shared (read trees with it)."""
    return build_primitive_set(OPS)


__all__ = [
    "FAMILIES",
    "INPUTS",
    "INPUT_SYMBOLS",
    "InputSpec",
    "Kind",
    "Level",
    "OPS",
    "Op",
    "OpRegistry",
    "PrimitiveError",
    "Scalar",
    "Weighted",
    "build_primitive_set",
    "default_pset",
    "generate_typed",
    "op_and_type",
    "parse_tree",
    "tree_inputs",
    "UnknownOpError",
]
