"""The op table: each primitive declared once, as data.

An `Op` carries everything the rest of lpzero needs to know about a primitive:
its paper id, its kind (which fixes its type signature per level), the torch
implementation, the sympy form used by the exporter, and the facts the rule-based
pruning strategy (RPS) reasons with. The typed toolbox, RPS, the exporter and the
docs all read the same `OpTable`.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable, Iterator

import sympy
import torch

from lpzero.errors import LPZeroError, UnknownNameError

from .values import Weighted, reduced


class Kind(str, enum.Enum):
    """What an op does to the level of its argument (it fixes the op's type signature)."""

    #: any level -> same
    ELEMENTWISE = "elementwise"
    #: tensors/layers -> same, along the last axis (softmax, min-max)
    DISTRIBUTION = "distribution"
    #: tensors -> layers, layers -> scalar
    REDUCE = "reduce"
    #: (T, T) -> T
    BINARY = "binary"
    #: a gene of the paper genome with no runtime form (prune)
    GENOME = "genome"

    def __str__(self) -> str:
        return self.value


class Level(str, enum.Enum):
    """The three levels of a value: one tensor per layer, one number per layer, one number."""

    TENSORS = "tensors"
    LAYERS = "layers"
    SCALAR = "scalar"

    def __str__(self) -> str:
        return self.value


KINDS = tuple(Kind)
LEVELS = tuple(Level)


class PrimitiveError(LPZeroError):
    """A malformed op declaration, an op that fails its probe, an unknown op or a malformed tree."""


class UnknownOpError(PrimitiveError, UnknownNameError):
    """An op name that is not in the table."""


@dataclass(frozen=True)
class _OnValues:
    """An element-wise or binary op applied to the values of `Weighted` arguments."""

    fn: Callable

    def __call__(self, *args):
        return args[0].with_values(self.fn(*(a.values for a in args)))


@dataclass(frozen=True)
class _Transform:
    """A distribution op (softmax, min-max): `Weighted` in, same weights and presence out."""

    fn: Callable

    def __call__(self, x):
        return x.with_values(self.fn(x))


@dataclass(frozen=True)
class _ReduceTensors:
    """A reduction of each tensor to one value per layer."""

    fn: Callable

    def __call__(self, x):
        return reduced(x, self.fn(x))


@dataclass(frozen=True)
class Op:
    """One primitive operation.

    `torch_fn` takes and returns torch tensors for elementwise/binary ops, and a
    `primitives.values.Weighted` (reduced or transformed along its last axis) for
    reduce/distribution ops. `sympy_fn` builds the op's sympy form from its
    arguments' sympy forms and the level it is applied at.
    """

    name: str
    paper_id: str
    kind: str
    levels: tuple[str, ...]
    torch_fn: Callable | None
    sympy_fn: Callable[..., sympy.Expr] | None
    doc: str
    # --- facts for RPS (see lpzero/search/rps.py) ---
    #: output is never negative (abs, square, exp, ...)
    nonnegative: bool = False
    #: output is exactly zero for some ordinary inputs (relu, min-max); 1/x after it is undefined
    can_produce_zero: bool = False
    #: inputs where the op is defined: "any", "nonnegative" or "positive"
    domain: str = "any"
    #: turns nonnegative values into nonpositive ones (neg); a restricted-domain op after it is undefined
    flips_sign: bool = False
    #: op names g such that self(g(x)) is a no-op or just x (inverse pairs, log-softmax of softmax)
    cancels: frozenset[str] = field(default_factory=frozenset)
    #: f(f(x)) == f(x)
    idempotent: bool = False
    #: f(f(x)) == x
    involution: bool = False
    #: f(x) == x whenever x >= 0 (abs, relu): redundant after a nonnegative op
    identity_on_nonnegative: bool = False
    #: argument positions that are denominators (1/x, a/b): undefined after an op that can produce zero
    denominator_args: tuple[int, ...] = ()
    #: constant when both arguments are the same subtree (a - a, a / a)
    constant_on_equal_args: bool = False
    #: in the typed toolbox's primitive set (identity and prune are genes of the paper genome only)
    typed: bool = True
    # --- protection (elementwise and binary ops only) ---
    #: given the op's argument tensors, a bool mask of the results its protection changed
    #: (a clamped log argument, a capped exp); None for ops that are never protected
    guard: Callable[..., torch.Tensor] | None = None
    #: the sympy form with the protection written out (exp(Min(x, 80))), used by the
    #: exporter where the guard was active, so the printed formula is what was computed
    guarded_sympy: Callable[..., sympy.Expr] | None = None
    #: what one node of this op adds to a tree's complexity (PySR's `complexity_of_operators`;
    #: input terminals count 1): the x axis of the Pareto front of `lpzero evolve`
    complexity: int = 1

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", Kind(self.kind))
            object.__setattr__(self, "levels", tuple(Level(lv) for lv in self.levels))
        except ValueError as e:
            raise PrimitiveError(f"op {self.name!r}: {e} (kinds: {', '.join(KINDS)}; levels: "
                                 f"{', '.join(LEVELS)})") from None
        if not self.levels:
            raise PrimitiveError(f"op {self.name!r}: no level")
        if self.kind in (Kind.DISTRIBUTION, Kind.REDUCE) and Level.SCALAR in self.levels:
            raise PrimitiveError(f"op {self.name!r}: a {self.kind} op has no scalar level")
        if self.domain not in ("any", "nonnegative", "positive"):
            raise PrimitiveError(f"op {self.name!r}: unknown domain {self.domain!r}")
        if isinstance(self.complexity, bool) or not isinstance(self.complexity, int) or self.complexity < 1:
            raise PrimitiveError(f"op {self.name!r}: complexity {self.complexity!r} (a whole number, at least 1)")
        if (self.guard or self.guarded_sympy) and self.kind not in (Kind.ELEMENTWISE, Kind.BINARY):
            raise PrimitiveError(f"op {self.name!r}: only elementwise and binary ops declare a guard")

    @property
    def arity(self) -> int:
        return 2 if self.kind == Kind.BINARY else 1

    def runtime(self, level: Level | str) -> Callable:
        """The callable a compiled tree calls for this op applied at `level`.

        Module-level callables, not closures, so a compiled primitive set pickles and a
        process pool can evaluate trees (`toolbox.register("map", pool.map)`).
        """
        fn = self.torch_fn
        if self.kind in (Kind.ELEMENTWISE, Kind.BINARY):
            return fn if level == Level.SCALAR else _OnValues(fn)
        if self.kind == Kind.DISTRIBUTION:
            return _Transform(fn)
        if self.kind == Kind.REDUCE:
            return _ReduceTensors(fn) if level == Level.TENSORS else fn  # layers -> scalar: a plain [N] tensor
        raise PrimitiveError(f"op {self.name!r} of kind {self.kind} has no runtime form")


#: probe values every op must map to finite values without touching its input
#: (as gplearn's `make_function` checks an op on zeros and negatives)
PROBES = {
    "zeros": torch.zeros(2, 3, 4),
    "negatives": -torch.linspace(0.5, 3.0, 24).reshape(2, 3, 4),
    "large values": torch.full((2, 3, 4), 1e4),
    "tiny values": torch.full((2, 3, 4), 1e-30),
}


def _probe_value(raw: torch.Tensor, level: Level):
    """`raw` [2, 3, 4] as a value of `level`: Weighted [N, L, K], Weighted [N, L, 1] or a tensor [N]."""
    if level == Level.TENSORS:
        return Weighted.from_weights(raw.clone(), torch.full((2, 3, 1), 10.0))
    if level == Level.LAYERS:
        return Weighted.from_weights(raw[..., 0].clone(), torch.ones(2, 1))
    return raw[:, 0, 0].clone()


def _values_of(x) -> torch.Tensor:
    return x.values if isinstance(x, Weighted) else x


def probe(op: Op) -> None:
    """Run `op` at each of its levels on `PROBES`; PrimitiveError if a result is not finite
    or the op changed its argument."""
    if op.torch_fn is None:
        return
    for what, raw in PROBES.items():
        for level in op.levels:
            args = [_probe_value(raw, level) for _ in range(op.arity)]
            before = [_values_of(a).clone() for a in args]
            out = op.runtime(level)(*args)
            for a, b in zip(args, before):
                if not torch.equal(_values_of(a), b):
                    raise PrimitiveError(f"op {op.name!r} modifies its argument (on {what}, {level} level)")
            if not torch.isfinite(_values_of(out)).all():
                raise PrimitiveError(f"op {op.name!r} returns non-finite values on {what} ({level} level)")


class OpTable:
    """An ordered table of ops that refuses duplicate names and probes each op it is given.

    `path` says where a new process imports the table from (`"module:ATTR"`,
    `"path/to/file.py:ATTR"` or an `lpzero.ops` entry-point name; see `lpzero.primitives.tables`):
    a search records it in best.json, so whoever reads the found proxy rebuilds its primitive
    set. None for the built-in table and for a table that is not importable (a test's own).
    """

    def __init__(self, path: str | None = None) -> None:
        self._ops: dict[str, Op] = {}
        self.path = path

    def add(self, op: Op) -> Op:
        """Register `op` after probing it (see `probe`); a second op of the same name is refused."""
        if op.name in self._ops:
            raise PrimitiveError(f"op {op.name!r} is declared twice")
        probe(op)
        self._ops[op.name] = op
        return op

    def __getitem__(self, name: str) -> Op:
        try:
            return self._ops[name]
        except KeyError:
            raise UnknownOpError("op", name, list(self._ops)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._ops

    def __iter__(self) -> Iterator[Op]:
        return iter(self._ops.values())

    def __len__(self) -> int:
        return len(self._ops)

    def of_kind(self, *kinds: str) -> list[Op]:
        return [op for op in self if op.kind in kinds]

    def copy(self, path: str | None = None) -> "OpTable":
        """A new table with the same ops, to which more ops can be added (`path`: see the class)."""
        table = OpTable(path)
        table._ops = dict(self._ops)  # already probed: the ops are immutable
        return table

    def __repr__(self) -> str:
        where = f" from {self.path!r}" if self.path else ""
        return f"<OpTable of {len(self)} ops{where}>"


def markdown_table(ops: OpTable) -> str:
    """The op table as Markdown (docs/concepts.md's table is this function's output; `lpzero ops` prints it)."""
    rows = ["| id | op | kind | levels | definition | RPS facts |", "|---|---|---|---|---|---|"]
    for op in ops:
        facts = [name for name in ("nonnegative", "can_produce_zero", "flips_sign", "idempotent", "involution",
                                   "identity_on_nonnegative", "constant_on_equal_args") if getattr(op, name)]
        if op.domain != "any":
            facts.append(f"domain {op.domain}")
        if op.cancels:
            facts.append("cancels " + "/".join(sorted(op.cancels)))
        if op.denominator_args:
            facts.append("denominator arg " + ",".join(map(str, op.denominator_args)))
        if not op.typed:
            facts.append("paper genome only")
        rows.append(f"| {op.paper_id} | `{op.name}` | {op.kind} | {', '.join(op.levels)} | {op.doc} | "
                    f"{'; '.join(facts)} |")
    return "\n".join(rows)
