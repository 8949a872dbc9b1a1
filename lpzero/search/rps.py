"""Rule-based pruning strategy (RPS, paper Table 11) as a DEAP decorator.

The rules are read from the op table's facts (`primitives.op.Op`), never from
a list of op names kept here:

- redundant: an op applied right after an op it cancels (log∘exp, sqrt∘square,
  log∘softmax, ...), an idempotent op twice (abs∘abs), an involution twice
  (neg∘neg), an op that is the identity on nonnegative values after a nonnegative
  op (abs∘exp, relu∘square), a - a or a / a;
- undefined: a restricted-domain op right after a sign flip (log∘neg, sqrt∘neg), a
  denominator right after an op that can produce zero (1/relu(x)).

The other kind of rejection, scores that are NaN, infinite or constant over the
sampled architectures, is decided by `lpzero.search.fitness`.
"""
from __future__ import annotations

import copy
import functools
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from deap import gp

from lpzero.primitives import OPS, OpTable, op_and_type


def _children(tree: gp.PrimitiveTree, index: int) -> list[int]:
    """Indexes of the direct children of node `index` in a prefix-ordered tree."""
    kids = []
    child = index + 1
    for _ in range(tree[index].arity):
        kids.append(child)
        child = tree.searchSubtree(child).stop
    return kids


#: rule -> (kind, what the rule says); kind "redundant" (a no-op or constant) or "undefined"
RULES = {
    "equal arguments": ("redundant", "constant when both arguments are the same subtree"),
    "cancels": ("redundant", "the outer op undoes the inner one"),
    "idempotent": ("redundant", "applying the op twice is applying it once"),
    "involution": ("redundant", "applying the op twice is the identity"),
    "no-op on nonnegative": ("redundant", "the outer op is the identity on the inner op's nonnegative values"),
    "domain": ("undefined", "the outer op needs nonnegative input and the inner op flips the sign"),
    "zero denominator": ("undefined", "a denominator right after an op that can produce zero"),
}


@dataclass(frozen=True)
class Violation:
    """One RPS rule a tree breaks, at one node: `ops` is the op ("sub") or pair ("log∘exp")."""

    rule: str
    ops: str

    @property
    def kind(self) -> str:
        return RULES[self.rule][0]

    @property
    def key(self) -> str:
        """What the RPS log counts: kind, ops and rule."""
        return f"{self.kind}: {self.ops} ({self.rule})"

    def __str__(self) -> str:
        return f"{self.kind}: {self.ops} — {RULES[self.rule][1]}"


def violations(tree: gp.PrimitiveTree, ops: OpTable = OPS) -> list[Violation]:
    """The RPS rules `tree` breaks (empty: accepted)."""
    found = []
    for i, node in enumerate(tree):
        if not isinstance(node, gp.Primitive):
            continue
        op, _ = op_and_type(node.name, ops)
        kids = _children(tree, i)
        if op.constant_on_equal_args and len(kids) == 2:
            a, b = (tree[tree.searchSubtree(k)] for k in kids)
            if str(gp.PrimitiveTree(a)) == str(gp.PrimitiveTree(b)):
                found.append(Violation("equal arguments", op.name))
        for pos, k in enumerate(kids):
            if not isinstance(tree[k], gp.Primitive):
                continue
            child, _ = op_and_type(tree[k].name, ops)
            pair = f"{op.name}∘{child.name}"
            if child.name in op.cancels:
                found.append(Violation("cancels", pair))
            elif child.name == op.name and op.idempotent:
                found.append(Violation("idempotent", pair))
            elif child.name == op.name and op.involution:
                found.append(Violation("involution", pair))
            elif op.identity_on_nonnegative and child.nonnegative:
                found.append(Violation("no-op on nonnegative", pair))
            if op.domain != "any" and child.flips_sign:
                found.append(Violation("domain", pair))
            if pos in op.denominator_args and child.can_produce_zero:
                found.append(Violation("zero denominator", pair))
    return found


@dataclass
class RPSLog:
    """Counts of offspring RPS rejected, by `Violation.key`."""

    rejected: int = 0
    gave_up: int = 0
    reasons: Counter = field(default_factory=Counter)

    def record(self, found: list[Violation]) -> None:
        self.rejected += 1
        for v in found:
            self.reasons[v.key] += 1

    def to_dict(self) -> dict:
        return {"rejected": self.rejected, "gave_up": self.gave_up, "reasons": dict(self.reasons)}

    def restore(self, data: dict) -> None:
        """Counts from `to_dict()` (a resumed run continues them)."""
        self.rejected, self.gave_up = data["rejected"], data["gave_up"]
        self.reasons = Counter(data["reasons"])


def rps_guard(log: RPSLog, ops: OpTable = OPS, max_tries: int = 50) -> Callable:
    """A DEAP decorator for `mate` / `mutate`: regenerate offspring RPS rejects.

    Apply with `toolbox.decorate("mate", rps_guard(log))`. The wrapped operator is
    retried on fresh copies of its inputs until every offspring passes; after
    `max_tries` the inputs are returned unchanged (counted in `log.gave_up`).
    """

    def decorator(operator: Callable) -> Callable:
        @functools.wraps(operator)
        def wrapper(*individuals, **kwargs):
            for _ in range(max_tries):
                offspring = operator(*[copy.deepcopy(ind) for ind in individuals], **kwargs)
                reasons = [r for child in offspring for r in violations(child, ops)]
                if not reasons:
                    return offspring
                log.record(reasons)
            log.gave_up += 1
            return tuple(individuals)

        return wrapper

    return decorator
