"""Where a proxy leans on the protection of its ops.

Protected ops (`Op.guard`: log and sqrt clamp their argument, exp caps it at 80,
reciprocal and div keep denominators off zero) keep every score finite, but where
a guard is active the textbook formula is not what was computed: a proxy whose
exp is capped on every layer scores e^80 x (number of layers), whatever the
formula's argument. `guard_activity` runs a tree on inputs and reports, for each
protected node, how often its guard changed a value. The exporter writes the
guard out (exp(min(x, 80))) for the nodes reported active, and the search report
says so.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

import torch
from deap import gp

from lpzero.primitives import OPS, Op, OpTable, Weighted, compile_tree, op_and_type


@dataclass(frozen=True)
class GuardActivity:
    """How often one protected node of a tree had its result changed by its guard."""

    node: int  # position of the op in the tree's prefix list
    op: str
    subtree: str
    active_fraction: float  # of the node's (present) result values, over all architectures
    architectures: int  # architectures with at least one changed value
    of: int  # architectures evaluated

    def to_dict(self) -> dict:
        return asdict(self)


def guard_activity(tree: gp.PrimitiveTree, pset: gp.PrimitiveSetTyped, inputs: Mapping[str, Weighted],
                   ops: OpTable = OPS) -> list[GuardActivity]:
    """Activity of every protected node of `tree` on `inputs` (symbol -> [N, L, K] values).

    The tree runs as fitness runs it (`lpzero.primitives.program`), each op's arguments shown to
    its guard. Nodes whose guard never fired are listed with `active_fraction` 0, so a caller
    can tell "checked, inactive" from "not protected".
    """
    report: list[GuardActivity] = []

    def observe(i: int, args: list, _out: object) -> None:
        op, _ = op_and_type(tree[i].name, ops)
        if op.guard is not None:
            report.append(_activity(tree, i, op, args))

    program = compile_tree(tree, pset)
    with torch.no_grad():
        program.evaluate(inputs, observe)
    return sorted(report, key=lambda g: g.node)


def _activity(tree: gp.PrimitiveTree, i: int, op: Op, args: list) -> GuardActivity:
    """How often the guard of `op`, the node at `i`, changed a value of its result on `args`."""
    raw = [a.values if isinstance(a, Weighted) else a for a in args]
    changed = op.guard(*raw)
    if isinstance(args[0], Weighted):  # padding (absent layers, short tensors) does not count
        changed = changed & args[0].present
        n_values = int(args[0].present.sum())
    else:
        n_values = changed.numel()
    per_arch = changed.reshape(changed.shape[0], -1).any(1)
    return GuardActivity(
        node=i, op=op.name, subtree=str(gp.PrimitiveTree(tree[tree.searchSubtree(i)])),
        active_fraction=float(changed.sum()) / max(n_values, 1),
        architectures=int(per_arch.sum()), of=int(changed.shape[0]),
    )


def active_nodes(activity: list[dict]) -> frozenset[int]:
    """Positions of the nodes whose guard changed at least one value (`activity`: `to_dict()` rows)."""
    return frozenset(r["node"] for r in activity if r["architectures"] > 0)


def describe(activity: list[dict], ops: OpTable = OPS) -> str:
    """One sentence for a report; says which active guards the formula cannot show."""
    active = [r for r in activity if r["architectures"] > 0]
    if not active:
        return "No protected op changed a value on the search sample: the formula holds as printed."
    parts = []
    for r in active:
        shown = "written out in the formula" if ops[r["op"]].guarded_sympy is not None else \
            f"not shown in the formula: {ops[r['op']].doc}"
        parts.append(f"`{r['op']}` at `{r['subtree']}` on {100 * r['active_fraction']:.0f}% of the values it computed "
                     f"({r['architectures']} of {r['of']} architectures; {shown})")
    return "Protection was active on the search sample — " + "; ".join(parts) + "."


__all__ = ["GuardActivity", "active_nodes", "describe", "guard_activity"]
