"""A proxy tree compiled once into a `Program`: the one evaluator of lpzero's trees.

A `Program` is the tree's prefix list of `Step`s (an input, a constant or an op's runtime
callable, `Op.runtime(level)`, with its arity), run by a small stack machine in the order
`gp.compile`'s Python expression runs them: `compile_tree(tree, pset)(*args)`, the inputs in
the order A, J, G, H, W, S, is bitwise `gp.compile(tree, pset)(*args)`. Fitness runs it on the
cached inputs of N architectures at once ([N, L, K] `Weighted` values); `evaluate(env, observe)`
hands each op's arguments and result to an observer (where a guard was active,
`lpzero.report.protection`).

`RowProgram` runs the same steps one row (one layer's tensor) at a time: a tree's tensors-level
ops work within a row, and only a reduction out of the tensors level (`Program.row_subtrees`)
leaves it, for one value per layer. Each such subtree runs on one layer's `Row`s, at the row's
own width beside one absent row (torch splits a reduction with one output row between threads
and one with several row by row: with the absent row the value does not depend on the number of
threads), the per-layer values are stacked and the rest of the tree runs on them. A `Row` is a
full tensor (weight 1, every element present) or a cached, sampled one (values, weights, present).

The evaluator needs no DEAP (`compile_tree` reads a DEAP tree by duck typing) and nothing but torch,
`Weighted` and the ops' callables: `lpzero export --format torch` writes this module's `Step`,
`Program`, `Row` and `RowProgram` into the standalone module it exports. Rows are read in the
default float dtype (float32), as lpzero reads every input.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch

from .pset import op_and_type
from .op import OpTable, PrimitiveError
from .types import INPUT_SYMBOLS
from .values import Weighted


@dataclass(frozen=True)
class Step:
    """One node of a compiled tree: an input (`symbol`), a constant (`value`) or a call of `fn`."""

    name: str
    arity: int
    #: the level of the node's value ("tensors", "layers", "scalar"; "" for a type without one)
    level: str
    fn: Callable | None = None
    symbol: str | None = None
    value: object = None


@dataclass(frozen=True)
class RowSubtree:
    """A subtree reducing a tensors-level value to one value per layer: `steps[span]`, reading `symbols`."""

    span: slice
    symbols: frozenset


def subtree_end(steps: Sequence, begin: int) -> int:
    """Where the subtree starting at `begin` ends (as DEAP's `searchSubtree`)."""
    end, total = begin + 1, steps[begin].arity
    while total > end - begin - 1:
        total += steps[end].arity
        end += 1
    return end


def _leaf_value(step: Step, env: Mapping[str, object]) -> object:
    """An input's value, a constant, or the value of an op that takes no argument."""
    if step.symbol is not None:
        return env[step.symbol]
    return step.fn() if step.fn is not None else step.value


@dataclass(frozen=True)
class Program:
    """A tree as a prefix list of steps; `program(*args)` is its value on inputs in the order `args`."""

    steps: tuple
    args: tuple = ()

    def __call__(self, *args):
        return self.evaluate(dict(zip(self.args, args)))

    def evaluate(self, env: Mapping[str, object], observe: Callable | None = None):
        """The value on the inputs `env` (symbol -> value). `observe(position, args, result)` is
        called after each op, in the order `gp.compile` calls them."""
        pending: list[tuple[int, list]] = []  # (position, arguments so far) of the ops still missing some
        for i, step in enumerate(self.steps):
            if step.arity:
                pending.append((i, []))
                continue
            value = _leaf_value(step, env)
            # a value may complete its op's arguments, whose value may complete the op above it, ...
            while pending:
                at, args = pending[-1]
                args.append(value)
                if len(args) < self.steps[at].arity:
                    break
                pending.pop()
                value = self.steps[at].fn(*args)
                if observe is not None:
                    observe(at, args, value)
            else:
                return value
        raise ValueError("a program whose steps do not form one tree")

    def row_subtrees(self) -> list:
        """The subtrees whose root takes tensors-level arguments to the layers level, in tree order.

        They never nest (nothing below one leaves the tensors level); one reading no input is
        left to the rest of the tree. Every input is read inside one of them when the tree's
        value is a scalar (only such a reduction leaves the tensors level).
        """
        found, i = [], 0
        while i < len(self.steps):
            if self._leaves_tensors(i):
                span = slice(i, subtree_end(self.steps, i))
                symbols = frozenset(s.symbol for s in self.steps[span] if s.symbol is not None)
                if symbols:
                    found.append(RowSubtree(span, symbols))
                i = span.stop
            else:
                i += 1
        return found

    def _leaves_tensors(self, i: int) -> bool:
        """Whether step i is an op taking tensors-level arguments to the layers level."""
        step = self.steps[i]
        if not step.arity or step.level != "layers":
            return False
        j, end = i + 1, subtree_end(self.steps, i)
        while j < end:
            if self.steps[j].level != "tensors":
                return False
            j = subtree_end(self.steps, j)
        return True

    def part(self, span: slice) -> "Program":
        """The subtree `steps[span]` as a program of its own."""
        return Program(self.steps[span], self.args)

    def with_slots(self, spans: Sequence[slice]) -> "Program":
        """The program with the subtree at `spans[k]` replaced by the input `#k`."""
        steps, last = [], 0
        for k, span in enumerate(spans):
            root = self.steps[span.start]
            steps += list(self.steps[last:span.start]) + [Step(f"#{k}", 0, root.level, symbol=f"#{k}")]
            last = span.stop
        return Program(tuple(steps) + self.steps[last:], self.args)


@dataclass(frozen=True)
class Row:
    """One layer's tensor of one input: `values` (any shape, read flattened), `weights` (None: every
    element stands for itself; one per row or one per element, as `Weighted`) and `present` (None:
    every element exists; else a bool mask like `values`)."""

    values: torch.Tensor
    weights: torch.Tensor | None = None
    present: torch.Tensor | None = None


def padded_row(row: Row | None, width: int, device: str | torch.device | None = None) -> Weighted:
    """`row` as a `Weighted` [1, 2, width] in the default float dtype: the row first, then one absent
    row (None: both absent). Values are converted as they are copied in."""
    values = torch.zeros(1, 2, width, device=device)
    present = torch.zeros(values.shape, dtype=torch.bool, device=device)
    if row is None:
        return Weighted(values, torch.ones(1, 2, 1, device=device), present)
    flat = row.values.reshape(-1)
    n = flat.numel()
    values[0, 0, :n] = flat
    if row.present is None:
        present[0, 0, :n] = True
    else:
        present[0, 0, :n] = row.present.reshape(-1)
    if row.weights is None or row.weights.numel() == 1:
        weights = torch.ones(1, 2, 1, device=device)
        if row.weights is not None:
            weights[0, 0, 0] = row.weights.reshape(-1)[0]
    else:
        weights = torch.ones(1, 2, width, device=device)
        weights[0, 0, :n] = row.weights.reshape(-1)
    return Weighted(values, weights, present)


def stacked(rows: Sequence[Weighted]) -> Weighted:
    """Per-layer values ([1, 1] each) side by side: [1, L]."""
    return Weighted(torch.cat([r.values for r in rows], 1), torch.cat([r.weights for r in rows], 1),
                    torch.cat([r.present for r in rows], 1))


class RowProgram:
    """A program evaluated one architecture at a time, one row at a time (`lpzero.primitives.program`).

    `row_value(k, rows)` is row subtree k on one layer's rows, `finish(per_layer)` the rest of the
    tree on each subtree's per-layer values; calling it does both on every row of one architecture
    (symbol -> its rows in layer order; an input it has none of: one absent row).
    """

    def __init__(self, program: Program, device: str | torch.device | None = None):
        self.program, self.device = program, device
        self.subtrees = program.row_subtrees()
        self.parts = [program.part(sub.span) for sub in self.subtrees]
        self.outer = program.with_slots([sub.span for sub in self.subtrees])

    def row_value(self, k: int, rows: Mapping[str, Row]) -> Weighted:
        """Row subtree k on one layer (an input missing from `rows`: absent), as a [1, 1] `Weighted`."""
        sub = self.subtrees[k]
        mine = {s: rows[s] for s in sub.symbols if s in rows}
        width = max([r.values.numel() for r in mine.values()], default=1)
        env = {s: padded_row(mine.get(s), width, self.device) for s in sub.symbols}
        with torch.no_grad():
            out = self.parts[k].evaluate(env)
        return Weighted(out.values[:, :1], out.weights[:, :1], out.present[:, :1])

    def layer_values(self, k: int, inputs: Mapping[str, Sequence[Row]]) -> list:
        """Row subtree k on each layer of one architecture's rows."""
        symbols = self.subtrees[k].symbols
        layers = max(len(inputs.get(s) or ()) for s in symbols)
        if not layers:
            return [self.row_value(k, {})]
        return [self.row_value(k, {s: inputs[s][i] for s in symbols if i < len(inputs.get(s) or ())})
                for i in range(layers)]

    def finish(self, per_layer: Sequence[Sequence[Weighted]]):
        """The tree's value (a [1] tensor) from each row subtree's per-layer values, in layer order."""
        env = {f"#{k}": stacked(values) for k, values in enumerate(per_layer)}
        with torch.no_grad():
            return self.outer.evaluate(env)

    def __call__(self, inputs: Mapping[str, Sequence[Row]]):
        """The tree's value (a [1] tensor) on one architecture's rows."""
        return self.finish([self.layer_values(k, inputs) for k in range(len(self.subtrees))])


def _leaf(node, arguments: Sequence[str], context: Mapping[str, object] | None) -> Step:
    """A terminal as gp.compile reads it: an input, a named constant (looked up) or a value."""
    level = getattr(node.ret, "level", "")
    if isinstance(node.value, str) and node.value in arguments:
        return Step(node.value, 0, level, symbol=node.value)
    if getattr(node, "conv_fct", repr) is str:  # symbolic (`addTerminal(..., name=...)`): a name in the context
        if context is None or node.value not in context:
            raise PrimitiveError(f"terminal {node.value!r} needs its primitive set to be evaluated")
        return Step(node.name, 0, level, value=context[node.value])
    return Step(node.name, 0, level, value=node.value)


def compile_tree(tree: Sequence, table) -> Program:
    """`tree` (a DEAP prefix list) as a `Program`: `compile_tree(tree, pset)(*args)` is bitwise
    `gp.compile(tree, pset)(*args)` (the same callables, called in the same order).

    `table` is the primitive set the tree was built with (its `context` gives the callables, as
    `gp.compile` reads them; its arguments the input order), an `OpTable` (each op's
    `Op.runtime(level)`; inputs A, J, G, H, W, S), or None for the structure alone (no callable).
    """
    by_ops = isinstance(table, OpTable)
    arguments = tuple(INPUT_SYMBOLS if by_ops or table is None else table.arguments)
    context = None if by_ops or table is None else table.context
    steps = []
    for node in tree:
        if not hasattr(node, "args"):
            steps.append(_leaf(node, arguments, context))
            continue
        if by_ops:
            op, t = op_and_type(node.name, table)
            fn = op.runtime(t.level)
        else:
            fn = None if context is None else context[node.name]
        steps.append(Step(node.name, node.arity, getattr(node.ret, "level", ""), fn))
    if not steps or _consumed(steps) != len(steps):
        raise PrimitiveError(f"malformed tree: {' '.join(s.name for s in steps)}")
    return Program(tuple(steps), arguments)


def _consumed(steps: Sequence[Step]) -> int:
    """How many steps the first tree in `steps` takes (-1: more than there are)."""
    try:
        return subtree_end(steps, 0)
    except IndexError:
        return -1


__all__ = ["Program", "Row", "RowProgram", "RowSubtree", "Step", "compile_tree", "padded_row", "subtree_end"]
