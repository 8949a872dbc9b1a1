"""The paper's fixed-shape genome: two inputs, n unary ops each, one binary op.

A genome is kept by op *names* and turned into an ordinary typed tree of the same
primitive set, so evaluation, RPS and export are shared with the typed toolbox.
Each branch starts as per-layer tensors; a reduction takes it one level down
(tensors -> per-layer values -> scalar). A branch still above scalar level at its
end is summed over layers (after a per-tensor mean at tensor level, as LPZero's
code reduces a tensor), then the binary op joins the two scalars: joining per-layer
values of two different inputs is exactly the shape mismatch the typed tree avoids.
`identity` leaves a branch unchanged and `prune` removes it (the other branch is
the proxy).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from deap import gp

from lpzero.primitives import INPUTS, OPS, Kind, Op, OpTable, PrimitiveError
from lpzero.primitives.pset import instance_name
from lpzero.primitives.types import ProxyType, Scalar, reduced_type

_INPUT_TYPES = {spec.symbol: spec.type for spec in INPUTS}


class GenomeError(PrimitiveError):
    """Genes that make no typed tree (an op after a level it does not apply to, both branches pruned)."""


@dataclass(frozen=True)
class PaperGenes:
    inputs: tuple[str, str]
    branches: tuple[tuple[str, ...], tuple[str, ...]]
    binary: str

    def to_dict(self) -> dict:
        return {"inputs": list(self.inputs), "branches": [list(b) for b in self.branches], "binary": self.binary}

    @classmethod
    def from_dict(cls, d: dict) -> "PaperGenes":
        return cls(tuple(d["inputs"]), tuple(tuple(b) for b in d["branches"]), d["binary"])


def unary_genes(ops: OpTable = OPS) -> list[Op]:
    return [op for op in ops if op.arity == 1 and op.kind != Kind.BINARY]


def binary_genes(ops: OpTable = OPS) -> list[Op]:
    return ops.of_kind(Kind.BINARY)


def _apply(op: Op, t: type[ProxyType]) -> type[ProxyType] | None:
    """The type after applying `op` to `t`, or None if it does not apply there."""
    if op.name in ("identity", "prune"):
        return t
    if t.level not in op.levels:
        return None
    return reduced_type(t) if op.kind == Kind.REDUCE else t


def _branch_prefix(symbol: str, op_names: tuple[str, ...], pset: gp.PrimitiveSetTyped, ops: OpTable):
    """Prefix list of a branch lifted to Scalar; None if pruned; GenomeError if ill-typed."""
    if "prune" in op_names:
        return None
    t = _INPUT_TYPES[symbol]
    wrappers: list[str] = []
    for name in op_names:
        nt = _apply(ops[name], t)
        if nt is None:
            raise GenomeError(f"{name} cannot follow a {t.level}-level value")
        if name != "identity":
            wrappers.append(instance_name(ops[name], t))
        t = nt
    if t.level == "tensors":
        wrappers.append(instance_name(ops["mean"], t))
        t = reduced_type(t)
    if t.level == "layers":
        wrappers.append(instance_name(ops["layer_sum"], t))
    prefix = [pset.mapping[name] for name in reversed(wrappers)]
    return prefix + [pset.mapping[symbol]]


def genes_to_tree(genes: PaperGenes, pset: gp.PrimitiveSetTyped, ops: OpTable = OPS) -> list:
    """The typed tree (prefix list) of a genome; GenomeError if no tree has these genes."""
    left, right = (_branch_prefix(s, b, pset, ops) for s, b in zip(genes.inputs, genes.branches))
    if left is None and right is None:
        raise GenomeError("both branches pruned")
    if left is None or right is None:
        return left or right
    return [pset.mapping[instance_name(ops[genes.binary], Scalar)]] + left + right


def random_branch(symbol: str, n_unary: int, rng: random.Random, ops: OpTable = OPS) -> tuple[str, ...]:
    """n unary op names that apply in sequence to input `symbol`."""
    t = _INPUT_TYPES[symbol]
    names = []
    for _ in range(n_unary):
        choices = [op for op in unary_genes(ops) if _apply(op, t) is not None]
        op = rng.choice(choices)
        names.append(op.name)
        t = _apply(op, t)
    return tuple(names)


def random_genes(n_unary: int, rng: random.Random, ops: OpTable = OPS) -> PaperGenes:
    symbols = [spec.symbol for spec in INPUTS]
    a, b = rng.sample(symbols, 2)
    return PaperGenes(
        (a, b),
        (random_branch(a, n_unary, rng, ops), random_branch(b, n_unary, rng, ops)),
        rng.choice(binary_genes(ops)).name,
    )


def crossover_genes(g1: PaperGenes, g2: PaperGenes, rng: random.Random) -> PaperGenes:
    """Uniform crossover, gene by gene (each input keeps the ops of its own branch)."""
    pick = [rng.random() < 0.5 for _ in range(2)]
    inputs = tuple((g1 if p else g2).inputs[i] for i, p in enumerate(pick))
    branches = tuple(
        tuple((g1 if rng.random() < 0.5 else g2).branches[i][j] for j in range(len(g1.branches[i])))
        for i in range(2)
    )
    binary = (g1 if rng.random() < 0.5 else g2).binary
    return PaperGenes(inputs, branches, binary)  # type: ignore[arg-type]


def mutate_genes(g: PaperGenes, n_unary: int, rng: random.Random, ops: OpTable = OPS) -> PaperGenes:
    """Redraw one gene: an input (with its branch), one unary op, or the binary op."""
    where = rng.randrange(2 * n_unary + 3)
    inputs, branches = list(g.inputs), [list(b) for b in g.branches]
    binary = g.binary
    if where < 2:
        inputs[where] = rng.choice([s.symbol for s in INPUTS])
        branches[where] = list(random_branch(inputs[where], n_unary, rng, ops))
    elif where < 2 + 2 * n_unary:
        i, j = divmod(where - 2, n_unary)
        branches[i][j] = rng.choice(unary_genes(ops)).name
    else:
        binary = rng.choice(binary_genes(ops)).name
    return PaperGenes(tuple(inputs), tuple(tuple(b) for b in branches), binary)  # type: ignore[arg-type]
