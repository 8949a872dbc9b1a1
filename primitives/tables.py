"""Op tables as named plugins, and the primitive set of each.

An op table (`OpRegistry`) is found by name in `OP_TABLES`, a `lpzero.registry.Registry`
of entry-point group `lpzero.ops`:

- `"default"`: the built-in table, `lpzero.primitives.OPS` (paper Table 7);
- an entry point of group `lpzero.ops` (another package's table, by its name);
- `"package.module:ATTR"` or `"path/to/file.py:ATTR"`: a module-level table of the user's.

A search records the table it ran with (`op_table_path`) so that a new process rebuilds the
same primitive set (`pset_of`) to read, score and export the found tree. The built-in table
is recorded as no path at all (None), so a best.json without one reads as `"default"`.
"""
from __future__ import annotations

import functools
from pathlib import Path

from deap import gp

from lpzero.errors import LPZeroError
from lpzero.registry import Registry

from .pset import build_primitive_set
from .registry import OpRegistry, PrimitiveError

#: the registered name of the built-in table
DEFAULT_TABLE = "default"


def _is_table(obj: object) -> str | None:
    return None if isinstance(obj, OpRegistry) else \
        f"is not an op table (a lpzero.primitives.OpRegistry) but a {type(obj).__name__}"


#: op tables by name; the built-in one is imported when first asked for (no work at import)
OP_TABLES: Registry[OpRegistry] = Registry("op table", group="lpzero.ops", error=PrimitiveError, check=_is_table)
OP_TABLES.register(DEFAULT_TABLE, "lpzero.primitives:OPS", description="the paper's 20 unary and 4 binary ops")


def _canonical(spec: str) -> str:
    """`spec` as a new process in another folder can read it: a file path made absolute."""
    where, sep, attr = spec.rpartition(":")
    if sep and where.endswith(".py"):
        return f"{Path(where).resolve()}:{attr}"
    return spec


def op_table(spec: str | OpRegistry | None = None) -> OpRegistry:
    """The op table `spec` names: None or `"default"` (the built-in `OPS`), an `lpzero.ops` entry
    point, `"module:ATTR"` or `"file.py:ATTR"`; an `OpRegistry` is returned as is.

    A table loaded here remembers `spec` as its `path` (unless it declared one). One line of
    `PrimitiveError` (or `UnknownNameError`) when the table cannot be imported, whatever failed.
    """
    if isinstance(spec, OpRegistry):
        return spec
    spec = DEFAULT_TABLE if spec is None else spec
    try:
        table = OP_TABLES.get(spec)
    except LPZeroError:
        raise
    except Exception as e:  # the user's module itself failed (a SyntaxError, a NameError, ...)
        raise PrimitiveError(f"op table {spec!r} cannot be imported: {type(e).__name__}: {e}") from None
    if table.path is None and spec != DEFAULT_TABLE and table is not OP_TABLES.get(DEFAULT_TABLE):
        table.path = _canonical(spec)
    return table


def op_table_path(ops: OpRegistry) -> str | None:
    """What best.json records of `ops` (its `"ops"`): None for the built-in table, else its `path`.

    PrimitiveError when the table has no path: a found proxy a new process could not read
    back must not be written (declare it `OpRegistry(path=...)` or load it with `op_table`).
    """
    if ops is OP_TABLES.get(DEFAULT_TABLE):
        return None
    if not ops.path:
        raise PrimitiveError(f"{ops!r} has no path a new process can import it from: define it at module level and "
                             "declare it with OpRegistry(path='module:ATTR') or load it with "
                             "op_table('module:ATTR' or 'file.py:ATTR')")
    return ops.path


@functools.lru_cache(maxsize=None)
def pset_of(ops: OpRegistry) -> gp.PrimitiveSetTyped:
    """The primitive set of `ops`, built on first use and shared per table (read trees with it;
    a search that may change its set builds its own with `build_primitive_set`)."""
    return build_primitive_set(ops)


__all__ = ["DEFAULT_TABLE", "OP_TABLES", "op_table", "op_table_path", "pset_of"]
