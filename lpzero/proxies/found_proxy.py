"""A found proxy: the tree a search wrote to best.json, read back once as one typed record.

`FoundProxy.load(path)` reads a search's `best.json` (or the folder holding it), checks it
(the schema below, the op table, the tree) and returns a `Proxy` that `score(ctx)`s
architectures like any hand-designed proxy. Everything that uses a found proxy (`lpzero
export`, `rank --proxy`, `nas --proxy`, reports) takes this record, not the JSON.

best.json, as far as reading the proxy back goes:

- `tree`: the typed tree as `str(tree)` prints it; `orientation`: 1, or -1 for a proxy that
  ranks in reverse (default 1); `benchmark`: what it was found on; `protection`: where its
  ops' guards were active on the search sample (`lpzero.report.protection`);
- `primitive_set_version` (`PRIMITIVE_SET_VERSION`) and `lpzero_best_version` (`BEST_VERSION`);
- `ops`: the op table the tree was found with, as `lpzero.primitives.op_table` reads it (an
  `lpzero.ops` entry point, `"module:ATTR"` or `"/abs/path/file.py:ATTR"`). Absent for the
  built-in table, so a best.json without `ops` reads with the built-in one (as does `"default"`).

Its name is `found:<folder>` (the folder holding the best.json, e.g. `found:run1`), so it
never collides with a hand-designed proxy's name; callers may pass another.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from deap import gp

from lpzero.benchmarks.inputs import ProxyInputs
from lpzero.errors import LPZeroError, ResultError
from lpzero.primitives import OpTable, PrimitiveError, op_table, parse_tree, pset_of, tree_inputs

from .base import Proxy
from .context import ProxyContext
from .inputs import score_in_context, score_tree

#: identifies the primitive set a saved tree refers to; bump when op semantics change
PRIMITIVE_SET_VERSION = "1"
#: the layout of best.json; bump when a key changes meaning
BEST_VERSION = 1
BEST_FILE = "best.json"


def best_file(path: Path | str) -> Path:
    """The best.json `path` names: the file itself, or the one in the folder `path`."""
    path = Path(path)
    return path / BEST_FILE if path.is_dir() else path


def read_best(path: Path | str) -> dict:
    """The JSON object of a best.json (or its folder), unchecked beyond being one: ResultError if not."""
    path = best_file(path)
    if not path.is_file():
        raise ResultError(f"{path}: file not found")
    try:
        best = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ResultError(f"{path}: malformed JSON (line {e.lineno}): {e.msg}") from None
    except UnicodeDecodeError:
        raise ResultError(f"{path}: not a text file") from None
    if not isinstance(best, dict):
        raise ResultError(f"{path}: not an lpzero best.json (a JSON {type(best).__name__}, not an object)")
    return best


#: longest tree text read (a search's trees are far shorter; a deeper one would exhaust the parser)
MAX_TREE_TEXT = 20_000
#: deepest tree read: Python's compiler refuses formulas nested much deeper (a search's limit is 8)
MAX_TREE_HEIGHT = 90


def check_best(best: dict, where: str) -> None:
    """ResultError (prefixed `where`) unless `best` has best.json's keys, versions and the forms of the
    keys lpzero reads (a value of the wrong JSON type is named with its key, never a traceback later)."""
    for key in ("tree", "primitive_set_version"):
        if key not in best:
            raise ResultError(f"{where}: not an lpzero best.json (no {key!r})")
    if best["primitive_set_version"] != PRIMITIVE_SET_VERSION:
        given = best["primitive_set_version"]
        # quoted only where the types differ: `1` against "1" must not read as "version 1, this lpzero has 1"
        shown = (given, PRIMITIVE_SET_VERSION) if type(given) is str else (repr(given), repr(PRIMITIVE_SET_VERSION))
        raise ResultError(f"{where}: written for primitive set version {shown[0]}, this lpzero has {shown[1]}")
    version = best.get("lpzero_best_version", BEST_VERSION)
    if version != BEST_VERSION or isinstance(version, bool):
        raise ResultError(f"{where}: best.json layout version {version!r}, this lpzero reads {BEST_VERSION!r}")
    orientation = best.get("orientation", 1)
    if isinstance(orientation, bool) or orientation not in (1, -1):
        raise ResultError(f"{where}: orientation must be 1 or -1, not {orientation!r}")
    if not isinstance(best["tree"], str) or len(best["tree"]) > MAX_TREE_TEXT:
        raise ResultError(f"{where}: 'tree' must be a tree's text of at most {MAX_TREE_TEXT:,} characters")
    check_protection(best.get("protection", []), where)
    for key in ("split", "benchmark"):
        if key in best and not isinstance(best[key], dict if key == "split" else str):
            raise ResultError(f"{where}: {key!r} must be {'an object' if key == 'split' else 'a name'}, "
                              f"not {best[key]!r:.60}")
    several = best.get("benchmarks", [])
    if not isinstance(several, list) or not all(
            isinstance(e, dict) and isinstance(e.get("benchmark"), str) and not isinstance(e.get("orientation"), bool)
            and e.get("orientation") in (1, -1) for e in several):
        raise ResultError(f"{where}: 'benchmarks' must be a list of objects, each with a 'benchmark' name and an "
                          f"'orientation' of 1 or -1, not {several!r:.60}")


#: the keys of a `protection` entry (`lpzero.report.protection.GuardActivity`) and the JSON types each may have
PROTECTION_KEYS: dict[str, tuple[type, ...]] = {"node": (int,), "op": (str,), "subtree": (str,),
                                                "active_fraction": (int, float), "architectures": (int,), "of": (int,)}


def check_protection(protection: object, where: str) -> None:
    """ResultError (prefixed `where`) unless `protection` is a list of guard-activity objects, each with
    every key of `PROTECTION_KEYS` of its type (the export and the report read them all)."""
    if not isinstance(protection, list) or not all(isinstance(g, dict) for g in protection):
        raise ResultError(f"{where}: 'protection' must be a list of objects, not {protection!r:.60}")
    for i, entry in enumerate(protection):
        for key, types in PROTECTION_KEYS.items():
            value = entry.get(key)
            if isinstance(value, bool) or not isinstance(value, types):
                kind = "a number" if float in types else "a whole number" if int in types else "a text"
                got = "missing" if key not in entry else f"not {value!r:.40}"
                raise ResultError(f"{where}: 'protection' entry {i}: {key!r} must be {kind}, {got}")


def best_ops(best: dict, where: str) -> OpTable:
    """The op table `best` was found with (its `"ops"`; the built-in one if absent): one line of
    ResultError, naming the table, when it cannot be imported."""
    spec = best.get("ops")
    if spec is not None and (not isinstance(spec, str) or not spec):
        raise ResultError(f"{where}: 'ops' must name an op table (module:ATTR or file.py:ATTR), not {spec!r}")
    try:
        return op_table(spec)
    except LPZeroError as e:
        reason = str(e).removeprefix(f"op table {spec!r}: ").replace("\n", " ")
        raise ResultError(f"{where}: its op table {spec!r} cannot be imported: {reason}") from None


@dataclass(frozen=True, eq=False)
class FoundProxy(Proxy):
    """A proxy found by a search, as its best.json records it (see the module docstring).

    `tree` is the tree's text and `parsed` the tree read with the primitive set of `ops`
    (`pset`); `ops_path` is the table as best.json names it (None: the built-in table).
    `found_on` is the benchmark it was found on (its sign and scale belong to it),
    `source` the best.json it was read from, `protection` its guard activity, and `best`
    the whole record, for reports.
    """

    name: str
    tree: str
    parsed: gp.PrimitiveTree
    ops: OpTable
    ops_path: str | None
    found_on: str | None
    source: str
    orientation: int = 1
    protection: tuple[dict, ...] = ()
    best: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: Path | str, name: str | None = None) -> "FoundProxy":
        """The found proxy of a best.json (or the folder holding one), checked: ResultError names
        the file and what is wrong with it in one line."""
        path = best_file(path)
        return cls.from_best(read_best(path), str(path), name)

    @classmethod
    def from_best(cls, best: dict, source: str = "", name: str | None = None) -> "FoundProxy":
        """The found proxy of a best.json record read from the file `source` (checked as `load`
        checks it; errors name `source`, or "best.json" when it is not given)."""
        where = source or BEST_FILE
        check_best(best, where)
        ops = best_ops(best, where)
        try:
            parsed = parse_tree(best["tree"], pset_of(ops))
        except PrimitiveError as e:
            raise ResultError(f"{where}: {e}") from None
        except RecursionError:
            parsed = None
        if parsed is None or parsed.height > MAX_TREE_HEIGHT:
            raise ResultError(f"{where}: 'tree' is nested deeper than {MAX_TREE_HEIGHT} levels (Python compiles "
                              "no deeper formula)")
        folder = Path(source).resolve().parent.name if source else ""
        return cls(name or f"found:{folder or 'best'}", best["tree"], parsed, ops, best.get("ops"),
                   best.get("benchmark"), source, best.get("orientation", 1), tuple(best.get("protection", [])), best)

    def on_benchmark(self, benchmark: str) -> "FoundProxy":
        """The proxy as it ranks `benchmark`: of a search on several benchmarks, with that benchmark's
        own orientation (the top-level one is the first benchmark's) and found on it; else itself."""
        for entry in self.best.get("benchmarks", []):
            if entry["benchmark"] == benchmark:
                return dataclasses.replace(self, orientation=entry["orientation"], found_on=benchmark)
        return self

    @property
    def pset(self) -> gp.PrimitiveSetTyped:
        """The primitive set of the proxy's op table (shared per table)."""
        return pset_of(self.ops)

    @property
    def inputs_needed(self) -> frozenset[str]:
        """The six inputs the tree reads (one extraction for all proxies of a context)."""
        return frozenset(tree_inputs(self.parsed))

    def score(self, ctx: ProxyContext) -> float:
        """The tree's value (orientation applied) on the full inputs of `ctx`'s shared model
        (`score_in_context`: shared with the context's other proxies, or streamed)."""
        return self.orientation * score_in_context(ctx, self.parsed, self.pset)

    def score_inputs(self, inputs: ProxyInputs, device: str | torch.device = "cpu") -> float:
        """The tree's value (orientation applied) on inputs extracted already (`extract_inputs`)."""
        return self.orientation * score_tree(self.parsed, inputs, device, self.pset)

    def record(self) -> dict:
        """What checkpoints and reports store about the proxy (a different proxy: a different record)."""
        record = {"name": self.name, "tree": self.tree, "orientation": self.orientation, "source": self.source}
        return record if self.ops_path is None else {**record, "ops": self.ops_path}

    def __reduce__(self) -> tuple:
        # an op table holds lambdas: a worker process reads the record again (and imports its table)
        return type(self).from_best, (self.best, self.source, self.name)


__all__ = ["BEST_FILE", "BEST_VERSION", "FoundProxy", "PRIMITIVE_SET_VERSION", "PROTECTION_KEYS", "best_file",
           "best_ops", "check_best", "check_protection", "read_best"]
