"""Op tables as named plugins, and the primitive set of each.

An op table (`OpTable`) is found by name in `OP_TABLES`, a `lpzero.registry.Registry`
of entry-point group `lpzero.ops`:

- `"default"`: the built-in table, `lpzero.primitives.OPS` (paper Table 7);
- `"extended"`: the default table plus `lpzero.primitives.ops.EXTENDED_OPS` (depth-weighted sum,
  first and last layer, median), and `"extended:OP,OP"` the default table plus only those
  (`extended_table`): the search-space ablation of `scripts/search_validation.py`;
- an entry point of group `lpzero.ops` (another package's table, by its name);
- `"package.module:ATTR"` or `"path/to/file.py:ATTR"`: a module-level table of the user's.

A search records the table it ran with (`op_table_path`) so that a new process rebuilds the
same primitive set (`pset_of`) to read, score and export the found tree. The built-in table
is recorded as no path at all (None), so a best.json without one reads as `"default"`.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Iterable

from deap import gp

from lpzero.errors import LPZeroError
from lpzero.registry import Registry

from .ops import EXTENDED_OPS
from .pset import build_primitive_set
from .op import OpTable, PrimitiveError, UnknownOpError

#: the registered name of the built-in table
DEFAULT_TABLE = "default"
#: the registered name of the default table plus the extended ops (`extended_table`)
EXTENDED_TABLE = "extended"


def _is_table(obj: object) -> str | None:
    return None if isinstance(obj, OpTable) else \
        f"is not an op table (a lpzero.primitives.OpTable) but a {type(obj).__name__}"


#: op tables by name; the built-in one is imported when first asked for (no work at import)
OP_TABLES: Registry[OpTable] = Registry("op table", group="lpzero.ops", error=PrimitiveError, check=_is_table)
OP_TABLES.register(DEFAULT_TABLE, "lpzero.primitives:OPS", description="the paper's 20 unary and 4 binary ops")
# `EXTENDED` is built by the module's `__getattr__` when first asked for; "extended:OP,OP" takes an argument
OP_TABLES.register(EXTENDED_TABLE, "lpzero.primitives.tables:EXTENDED", prefix=True,
                   description="the default ops plus depth_weighted, first_layer, last_layer and median "
                               "(extended:OP,OP: the default ops plus only those)")


def extended_table(names: Iterable[str] | None = None) -> OpTable:
    """The default table plus the extended ops named in `names` (None: all of `EXTENDED_OPS`), each
    probed as it is added. One table per choice (so one primitive set, `pset_of`), whose `path` is
    what `op_table` reads it from: `"extended"`, or `"extended:OP,OP"` in the table's order."""
    known = [op.name for op in EXTENDED_OPS]
    wanted = set(known if names is None else names)
    unknown = sorted(wanted - set(known))
    if unknown or not wanted:
        raise UnknownOpError("extended op", unknown[0] if unknown else "", known)
    return _extended(tuple(name for name in known if name in wanted))


@functools.lru_cache(maxsize=None)
def _extended(names: tuple[str, ...]) -> OpTable:
    every = names == tuple(op.name for op in EXTENDED_OPS)
    table = OP_TABLES.get(DEFAULT_TABLE).copy(EXTENDED_TABLE if every else f"{EXTENDED_TABLE}:{','.join(names)}")
    for op in EXTENDED_OPS:
        if op.name in names:
            table.add(op)
    return table


def __getattr__(name: str) -> OpTable:
    # the registered "extended" entry is imported as this attribute: built on first use, not at import
    if name == "EXTENDED":
        return extended_table()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _canonical(spec: str) -> str:
    """`spec` as a new process in another folder can read it: a file path made absolute."""
    where, sep, attr = spec.rpartition(":")
    if sep and where.endswith(".py"):
        return f"{Path(where).resolve()}:{attr}"
    return spec


def op_table(spec: str | OpTable | None = None) -> OpTable:
    """The op table `spec` names: None or `"default"` (the built-in `OPS`), an `lpzero.ops` entry
    point, `"module:ATTR"` or `"file.py:ATTR"`; an `OpTable` is returned as is.

    A table loaded here remembers `spec` as its `path` (unless it declared one). One line of
    `PrimitiveError` (or `UnknownNameError`) when the table cannot be imported, whatever failed.
    """
    if isinstance(spec, OpTable):
        return spec
    spec = DEFAULT_TABLE if spec is None else spec
    try:
        found = OP_TABLES.lookup(spec)
        if found.argument is None:
            table = found.obj
        elif spec.partition(":")[0] == EXTENDED_TABLE:  # the one table registered with an argument
            table = extended_table(found.argument.split(","))
        else:
            raise PrimitiveError(f"op table {spec!r}: {spec.partition(':')[0]} takes no argument")
    except LPZeroError:
        raise
    except Exception as e:  # the user's module itself failed (a SyntaxError, a NameError, ...)
        raise PrimitiveError(f"op table {spec!r} cannot be imported: {type(e).__name__}: {e}") from None
    if table.path is None and spec != DEFAULT_TABLE and table is not OP_TABLES.get(DEFAULT_TABLE):
        table.path = _canonical(spec)
    return table


def op_table_path(ops: OpTable) -> str | None:
    """What best.json records of `ops` (its `"ops"`): None for the built-in table, else its `path`.

    PrimitiveError when the table has no path: a found proxy a new process could not read
    back must not be written (declare it `OpTable(path=...)` or load it with `op_table`).
    """
    if ops is OP_TABLES.get(DEFAULT_TABLE):
        return None
    if not ops.path:
        raise PrimitiveError(f"{ops!r} has no path a new process can import it from: define it at module level and "
                             "declare it with OpTable(path='module:ATTR') or load it with "
                             "op_table('module:ATTR' or 'file.py:ATTR')")
    return ops.path


@functools.lru_cache(maxsize=None)
def pset_of(ops: OpTable) -> gp.PrimitiveSetTyped:
    """The primitive set of `ops`, built on first use and shared per table (read trees with it;
    a search that may change its set builds its own with `build_primitive_set`)."""
    return build_primitive_set(ops)


__all__ = ["DEFAULT_TABLE", "EXTENDED_TABLE", "OP_TABLES", "extended_table", "op_table", "op_table_path", "pset_of"]
