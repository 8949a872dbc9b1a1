"""The op table: each primitive declared once, as data.

An `Op` carries everything the rest of lpzero needs to know about a primitive:
its paper id, its kind (which fixes its type signature per level), the torch
implementation, the sympy form used by the exporter, and the facts the rule-based
pruning strategy (RPS) reasons with. The typed toolbox, RPS, the exporter and the
docs all read the same `OpRegistry`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import sympy
import torch

#: kind -> the levels an op of that kind may take, and what it returns
#:   elementwise: any level -> same;   distribution: tensors/layers -> same
#:   reduce: tensors -> layers, layers -> scalar;   binary: (T, T) -> T
KINDS = ("elementwise", "distribution", "reduce", "binary", "genome")
LEVELS = ("tensors", "layers", "scalar")


class PrimitiveError(ValueError):
    """A malformed op declaration or an unknown op name."""


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
    # --- facts for RPS (see lpzero/rps.py) ---
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

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise PrimitiveError(f"op {self.name!r}: unknown kind {self.kind!r}")
        if not self.levels or any(lv not in LEVELS for lv in self.levels):
            raise PrimitiveError(f"op {self.name!r}: levels must be drawn from {LEVELS}, got {self.levels}")
        if self.kind in ("distribution", "reduce") and "scalar" in self.levels:
            raise PrimitiveError(f"op {self.name!r}: a {self.kind} op has no scalar level")
        if self.domain not in ("any", "nonnegative", "positive"):
            raise PrimitiveError(f"op {self.name!r}: unknown domain {self.domain!r}")
        if (self.guard or self.guarded_sympy) and self.kind not in ("elementwise", "binary"):
            raise PrimitiveError(f"op {self.name!r}: only elementwise and binary ops declare a guard")

    @property
    def arity(self) -> int:
        return 2 if self.kind == "binary" else 1


class OpRegistry:
    """An ordered table of ops that refuses duplicate names."""

    def __init__(self) -> None:
        self._ops: dict[str, Op] = {}

    def add(self, op: Op) -> Op:
        if op.name in self._ops:
            raise PrimitiveError(f"op {op.name!r} is declared twice")
        self._ops[op.name] = op
        return op

    def __getitem__(self, name: str) -> Op:
        try:
            return self._ops[name]
        except KeyError:
            raise PrimitiveError(f"unknown op {name!r} (known: {', '.join(self._ops)})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._ops

    def __iter__(self) -> Iterator[Op]:
        return iter(self._ops.values())

    def __len__(self) -> int:
        return len(self._ops)

    def of_kind(self, *kinds: str) -> list[Op]:
        return [op for op in self if op.kind in kinds]


def markdown_table(ops: OpRegistry) -> str:
    """The op table as Markdown (the README's table is this function's output)."""
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
