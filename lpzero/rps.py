"""Rule-based pruning strategy (RPS, paper Table 11) as a DEAP decorator.

The rules are read from the op table's facts (`primitives.registry.Op`), never from
a list of op names kept here:

- redundant: an op applied right after an op it cancels (log∘exp, sqrt∘square,
  log∘softmax, ...), an idempotent op twice (abs∘abs), an involution twice
  (neg∘neg), an op that is the identity on nonnegative values after a nonnegative
  op (abs∘exp, relu∘square), a - a or a / a;
- undefined: a restricted-domain op right after a sign flip (log∘neg, sqrt∘neg), a
  denominator right after an op that can produce zero (1/relu(x)).

The other kind of rejection, scores that are NaN, infinite or constant over the
sampled architectures, is decided by `lpzero.fitness`.
"""
from __future__ import annotations

import copy
import functools
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from deap import gp

from primitives import OPS, OpRegistry, op_and_type


def _children(tree: gp.PrimitiveTree, index: int) -> list[int]:
    """Indexes of the direct children of node `index` in a prefix-ordered tree."""
    kids = []
    child = index + 1
    for _ in range(tree[index].arity):
        kids.append(child)
        child = tree.searchSubtree(child).stop
    return kids


def violations(tree: gp.PrimitiveTree, ops: OpRegistry = OPS) -> list[str]:
    """The RPS rules `tree` breaks, as human-readable reasons (empty: accepted)."""
    found = []
    for i, node in enumerate(tree):
        if not isinstance(node, gp.Primitive):
            continue
        op, _ = op_and_type(node.name, ops)
        kids = _children(tree, i)
        if op.constant_on_equal_args and len(kids) == 2:
            a, b = (tree[tree.searchSubtree(k)] for k in kids)
            if str(gp.PrimitiveTree(a)) == str(gp.PrimitiveTree(b)):
                found.append(f"redundant: {op.name} of two equal arguments is constant")
        for pos, k in enumerate(kids):
            if not isinstance(tree[k], gp.Primitive):
                continue
            child, _ = op_and_type(tree[k].name, ops)
            pair = f"{op.name}∘{child.name}"
            if child.name in op.cancels:
                found.append(f"redundant: {pair} cancels")
            elif child.name == op.name and op.idempotent:
                found.append(f"redundant: {pair} (idempotent)")
            elif child.name == op.name and op.involution:
                found.append(f"redundant: {pair} is the identity")
            elif op.identity_on_nonnegative and child.nonnegative:
                found.append(f"redundant: {op.name} of a nonnegative {child.name} is a no-op")
            if op.domain != "any" and child.flips_sign:
                found.append(f"undefined: {pair} ({op.name} needs {op.domain} input)")
            if pos in op.denominator_args and child.can_produce_zero:
                found.append(f"undefined: {pair} (division by a value that can be zero)")
    return found


@dataclass
class RPSLog:
    """Counts of offspring RPS rejected, by reason."""

    rejected: int = 0
    gave_up: int = 0
    reasons: Counter = field(default_factory=Counter)

    def record(self, reasons: list[str]) -> None:
        self.rejected += 1
        for r in reasons:
            self.reasons[r.split(" (")[0]] += 1


def rps_guard(log: RPSLog, ops: OpRegistry = OPS, max_tries: int = 50) -> Callable:
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
