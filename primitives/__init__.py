"""Typed primitive operations of proxy trees (the bottom layer; installed as `lpzero.primitives`).

- `OPS`: the op table (`lpzero.primitives.ops.build_registry`), one entry per op.
- `INPUTS`: the six terminals A, J, G, H, W, S and their marker types.
- `build_primitive_set()`: the DEAP `PrimitiveSetTyped` over both; `parse_tree`
  reads a tree back from its text.
- `compile_tree(tree, pset)`: a tree as a `Program`, the one evaluator of trees (fitness, exact row-by-row
  scoring with `RowProgram`, guard activity, the torch export); `program(A, J, G, H, W, S)`.
- `op_table(name)`: an op table by name (`OP_TABLES`: "default" is `OPS`, "extended" is `OPS` plus
  `ops.EXTENDED_OPS` (`extended_table`), entry points of group `lpzero.ops`, `"module:ATTR"`,
  `"file.py:ATTR"`); `pset_of(table)` its primitive set.
"""
from __future__ import annotations

from deap import gp

from .ops import build_registry
from .program import Program, Row, RowProgram, compile_tree
from .pset import build_primitive_set, generate_typed, op_and_type, parse_tree, tree_inputs
from .op import Kind, Level, Op, OpTable, PrimitiveError, UnknownOpError
from .tables import DEFAULT_TABLE, EXTENDED_TABLE, OP_TABLES, extended_table, op_table, op_table_path, pset_of
from .types import FAMILIES, INPUT_SYMBOLS, INPUTS, InputSpec, Scalar
from .values import Weighted

#: the op table; a module-level constant built from declarations, no I/O
OPS: OpTable = build_registry()


def default_pset() -> gp.PrimitiveSetTyped:
    """The primitive set of `OPS`, built on first use and shared (read trees with it): `pset_of(OPS)`."""
    return pset_of(OPS)


__all__ = [
    "DEFAULT_TABLE",
    "EXTENDED_TABLE",
    "FAMILIES",
    "INPUTS",
    "INPUT_SYMBOLS",
    "InputSpec",
    "Kind",
    "Level",
    "OPS",
    "OP_TABLES",
    "Op",
    "OpTable",
    "PrimitiveError",
    "Program",
    "Row",
    "RowProgram",
    "Scalar",
    "Weighted",
    "build_primitive_set",
    "compile_tree",
    "default_pset",
    "extended_table",
    "generate_typed",
    "op_and_type",
    "op_table",
    "op_table_path",
    "parse_tree",
    "pset_of",
    "tree_inputs",
    "UnknownOpError",
]
