"""Scoring a proxy tree one row at a time: each layer's tensors reduced as soon as they exist.

A tree's tensor-level ops work within one row (one layer's tensor): element-wise ops, ops
along the last axis, binary ops joining two inputs of one family (W and G, row by row). Only
a REDUCE op applied to a tensors-level value leaves that level, for one value per layer. So
each such subtree (`row_subtrees`) is evaluated one row at a time and the rest of the tree on
the per-layer values. This is the one way a tree is scored exactly on an architecture:
`score_rows` on full inputs (`lpzero.proxies.inputs.score_tree`) and `stream_score` on a
streamed pass, which hands the rows over as backward produces them, give the same value.

A row is evaluated at its own width (never padded to the widest row: at 7B that is a
45-million-element copy per row) and beside one absent row: torch reduces a tensor with one
output row by splitting that row between threads, and one with several rows row by row, so
with the absent row the value does not depend on the number of threads.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from deap import gp

from lpzero.benchmarks.inputs import SYMBOLS, LayerTensor, Layout, ProxyInputs, RowShape, stream_inputs
from lpzero.primitives import Weighted

from .context import ProxyContext


@dataclass(frozen=True)
class RowSubtree:
    """A subtree reducing a tensors-level value to one value per layer: `tree[span]`, reading `symbols`."""

    span: slice
    symbols: frozenset[str]


def _level(t: type) -> str:
    return getattr(t, "level", "")


def row_subtrees(tree: gp.PrimitiveTree) -> list[RowSubtree]:
    """The subtrees of `tree` whose root takes tensors-level arguments to layers level, in tree order.

    They never nest (nothing below one leaves the tensors level) and every input terminal is in
    one of them (the root is a scalar, and only such a reduction leaves the tensors level).
    """
    found, i = [], 0
    while i < len(tree):
        node = tree[i]
        if (isinstance(node, gp.Primitive) and node.args and _level(node.ret) == "layers"
                and all(_level(a) == "tensors" for a in node.args)):
            span = tree.searchSubtree(i)
            symbols = frozenset(n.value for n in tree[span] if isinstance(n, gp.Terminal) and n.value in SYMBOLS)
            if symbols:
                found.append(RowSubtree(span, symbols))
            i = span.stop
        else:
            i += 1
    return found


def evaluate(tree: gp.PrimitiveTree, pset: gp.PrimitiveSetTyped, begin: int,
             known: dict[int, object]) -> tuple[object, int]:
    """(value of the subtree starting at `begin`, where it ends): what `gp.compile` would compute,
    with the subtree starting at position p replaced by `known[p]` (an input terminal's value, or
    a subtree's)."""
    if begin in known:
        return known[begin], tree.searchSubtree(begin).stop
    node = tree[begin]
    if isinstance(node, gp.Terminal):
        return eval(node.format(), pset.context), begin + 1  # a constant terminal: as compile reads it
    args, end = [], begin + 1
    for _ in range(node.arity):
        value, end = evaluate(tree, pset, end, known)
        args.append(value)
    return pset.context[node.name](*args), end


class TreeRows:
    """A `RowReducer` that scores one proxy tree (`score()` after the pass): rows go through the tree's
    row subtrees as they come, and only one value per row and subtree is kept."""

    def __init__(self, tree: gp.PrimitiveTree, pset: gp.PrimitiveSetTyped, device: str | torch.device = "cpu"):
        self.tree, self.pset, self.device = tree, pset, device
        self.subtrees = row_subtrees(tree)
        self.rows_of: dict[str, int] = {}
        self.values: list[dict[int, Weighted]] = [{} for _ in self.subtrees]

    def begin(self, layout: Layout) -> None:
        self.rows_of = {s: len(layout.get(s, ())) for s in SYMBOLS}
        self.values = [{} for _ in self.subtrees]
        for k, sub in enumerate(self.subtrees):
            if not max(self.rows_of[s] for s in sub.symbols):  # an input this model lacks: one absent row
                self.values[k][0] = self._row_value(sub, {})

    def _row_value(self, sub: RowSubtree, tensors: dict[str, LayerTensor]) -> Weighted:
        """`sub` on one row, at the row's own width beside an absent row (see the module docstring)."""
        width = max([t.stored.numel() for t in tensors.values()], default=1)
        known = {}
        for i in range(sub.span.start, sub.span.stop):
            node = self.tree[i]
            if isinstance(node, gp.Terminal) and node.value in sub.symbols:
                sym = node.value
                values = torch.zeros(1, 2, width, device=self.device)
                present = torch.zeros(values.shape, dtype=torch.bool, device=self.device)
                if sym in tensors:
                    flat = tensors[sym].stored.reshape(-1)  # converted to float32 as it is copied in
                    values[0, 0, : flat.numel()] = flat
                    present[0, 0, : flat.numel()] = True
                known[i] = Weighted(values, torch.ones(1, 2, 1, device=self.device), present)
        with torch.no_grad():
            out, _ = evaluate(self.tree, self.pset, sub.span.start, known)
        return Weighted(out.values[:, :1], out.weights[:, :1], out.present[:, :1])

    def rows(self, index: int, tensors: dict[str, LayerTensor]) -> None:
        for k, sub in enumerate(self.subtrees):
            if sub.symbols <= tensors.keys():
                self.values[k][index] = self._row_value(sub, {s: tensors[s] for s in sub.symbols})

    def score(self) -> float:
        """The tree's value once every row has come."""
        known = {}
        for sub, values in zip(self.subtrees, self.values):
            rows = [values[i] for i in sorted(values)]
            known[sub.span.start] = Weighted(torch.cat([r.values for r in rows], 1),
                                             torch.cat([r.weights for r in rows], 1),
                                             torch.cat([r.present for r in rows], 1))
        with torch.no_grad():
            out, _ = evaluate(self.tree, self.pset, 0, known)
        return float(out[0])


def score_rows(tree: gp.PrimitiveTree, pset: gp.PrimitiveSetTyped, inputs: ProxyInputs,
               device: str | torch.device = "cpu") -> float:
    """The tree's value on an architecture's full inputs (`extract_inputs`), row after row."""
    reducer = TreeRows(tree, pset, device)
    reducer.begin({s: [RowShape(lt.layer, lt.name, lt.stored.numel()) for lt in inputs[s]] for s in SYMBOLS})
    for index in range(max(len(rows) for rows in inputs.values())):
        reducer.rows(index, {s: rows[index] for s, rows in inputs.items() if index < len(rows)})
    return reducer.score()


def stream_score(ctx: ProxyContext, tree: gp.PrimitiveTree, pset: gp.PrimitiveSetTyped) -> float:
    """`score_rows(tree, pset, extract_inputs(...))` on `ctx`'s shared model, from one streamed pass
    that holds one layer's gradients at a time."""
    reducer = TreeRows(tree, pset, ctx.device)
    needed = set().union(*(sub.symbols for sub in reducer.subtrees))
    stream_inputs(ctx.benchmark, ctx.model(), ctx.inputs(), reducer, [s for s in SYMBOLS if s in needed])
    return reducer.score()
