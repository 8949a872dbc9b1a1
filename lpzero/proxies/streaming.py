"""Scoring a proxy tree one row at a time: each layer's tensors reduced as soon as they exist.

A tree's tensor-level ops work within one row (one layer's tensor): element-wise ops, ops
along the last axis, binary ops joining two inputs of one family (W and G, row by row). Only
a REDUCE op applied to a tensors-level value leaves that level, for one value per layer. So
each such subtree (`row_subtrees`) is evaluated one row at a time and the rest of the tree on
the per-layer values, by `lpzero.primitives.program.RowProgram` (the evaluator fitness and the
torch export run too; this module only feeds it rows). This is the one way a tree is scored exactly on an architecture:
`score_rows` on full inputs (`lpzero.proxies.inputs.score_tree`) and `stream_score` on a
streamed pass, which hands the rows over as backward produces them, give the same value.

A row is evaluated at its own width (never padded to the widest row: at 7B that is a
45-million-element copy per row) and beside one absent row: torch reduces a tensor with one
output row by splitting that row between threads, and one with several rows row by row, so
with the absent row the value does not depend on the number of threads.
"""
from __future__ import annotations

import torch
from deap import gp

from lpzero.benchmarks.inputs import SYMBOLS, LayerTensor, Layout, ProxyInputs, RowShape, stream_inputs
from lpzero.primitives import Weighted
from lpzero.primitives.program import Row, RowProgram, RowSubtree, compile_tree

from .context import ProxyContext


def row_subtrees(tree: gp.PrimitiveTree) -> list[RowSubtree]:
    """The subtrees of `tree` whose root takes tensors-level arguments to layers level, in tree order
    (`lpzero.primitives.program.Program.row_subtrees`: `tree[span]`, reading `symbols`)."""
    return compile_tree(tree, None).row_subtrees()


class TreeRows:
    """A `RowReducer` that scores one proxy tree (`score()` after the pass): rows go through the tree's
    row subtrees as they come (`lpzero.primitives.program.RowProgram`), and only one value per row and
    subtree is kept."""

    def __init__(self, tree: gp.PrimitiveTree, pset: gp.PrimitiveSetTyped, device: str | torch.device = "cpu"):
        self.tree, self.pset, self.device = tree, pset, device
        self.program = RowProgram(compile_tree(tree, pset), device)
        self.subtrees = self.program.subtrees
        self.rows_of: dict[str, int] = {}
        self.values: list[dict[int, Weighted]] = [{} for _ in self.subtrees]

    def begin(self, layout: Layout) -> None:
        self.rows_of = {s: len(layout.get(s, ())) for s in SYMBOLS}
        self.values = [{} for _ in self.subtrees]
        for k, sub in enumerate(self.subtrees):
            if not max(self.rows_of[s] for s in sub.symbols):  # an input this model lacks: one absent row
                self.values[k][0] = self.program.row_value(k, {})

    def rows(self, index: int, tensors: dict[str, LayerTensor]) -> None:
        for k, sub in enumerate(self.subtrees):
            if sub.symbols <= tensors.keys():
                # the stored tensor, converted to float32 as the row is copied in
                self.values[k][index] = self.program.row_value(k, {s: Row(tensors[s].stored) for s in sub.symbols})

    def score(self) -> float:
        """The tree's value once every row has come."""
        out = self.program.finish([[values[i] for i in sorted(values)] for values in self.values])
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
