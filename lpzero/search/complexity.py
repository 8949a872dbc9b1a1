"""Tree complexity, the Pareto front of complexity vs search-part ρ, and model selection on it.

As in PySR: a tree's complexity is the sum over its nodes of each op's declared weight
(`Op.complexity`, default 1; input terminals count 1). The front keeps, over every
valid tree of every run, the best tree at each complexity that beats all simpler ones.
`select_model` picks the found proxy with PySR's `model_selection` rules, loss = 1 - ρ:
"accuracy" (the most accurate: the final selection's first tree), "score" (the largest drop
of log loss per unit of complexity from the next simpler front tree), "best" (the highest
score among the front trees whose loss is within 1.5x the lowest), and lpzero's own
"simplest:DELTA" (the simplest front tree within DELTA of the front's best ρ; the default,
`DEFAULT_SELECT`). Only search-part ρ takes part in the choice; held-out figures never do.

Parsimony pressure (`--parsimony`, `parse_parsimony`) uses the same complexity: "COEF" is
gplearn's parsimony coefficient (selection fitness |ρ| - COEF x complexity, `penalized_fitness`;
reported figures stay the raw |ρ|), "double:FITNESS_SIZE,PARSIMONY_SIZE" DEAP's double
tournament (`tools.selDoubleTournament`, whose size test is DEAP's own: nodes, not complexity).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

from deap import gp

from lpzero.errors import LPZeroError
from lpzero.primitives import OpTable, op_and_type

from .fitness import Evaluation

#: the ways `--select` chooses the found proxy (simplest takes ":DELTA"): PySR's three and lpzero's own
SELECTIONS = ("accuracy", "best", "score", "simplest:DELTA")
#: what lpzero 0.1 called `--select best` is "accuracy" and `--select score` is "best" (the names now mean
#: what PySR's do); the old spellings now mean PySR's choices, so a search says so (`renamed_select`)
RENAMED_SELECT = {"best": "accuracy", "score": "best"}
#: the default `--select`, chosen on validation data (`scripts/search_validation.py --selects`, never
#: the held-out half): on GPT-2 and FlexiBERT it picked simpler trees than "best" that ranked the
#: held-back architectures at least as well (docs/results.md)
DEFAULT_SELECT = "simplest:0.005"
#: PySR's "best" considers only trees whose loss is within this factor of the best loss
SCORE_LOSS_FACTOR = 1.5
#: a loss of 0 (ρ = 1) has no log; it is read as this
_MIN_LOSS = 1e-12


def tree_complexity(tree: gp.PrimitiveTree, ops: OpTable) -> int:
    """Sum of the ops' complexity weights over the tree's primitives, plus 1 per terminal."""
    return sum(op_and_type(node.name, ops)[0].complexity if isinstance(node, gp.Primitive) else 1 for node in tree)


def parse_select(select: str) -> tuple[str, float | None]:
    """("accuracy" | "best" | "score" | "simplest", DELTA or None) of a `--select` value; LPZeroError if
    malformed."""
    how, _, arg = select.partition(":")
    if how in ("accuracy", "best", "score") and not arg:
        return how, None
    if how == "simplest":
        try:
            delta = float(arg)
        except ValueError:
            delta = math.nan
        if math.isfinite(delta) and delta >= 0:
            return how, delta
        raise LPZeroError(f"--select {select!r}: simplest takes a nonnegative ρ difference, e.g. simplest:0.01")
    raise LPZeroError(f"unknown --select {select!r} (one of: {', '.join(SELECTIONS)})")


def pareto_front(complexity: Sequence[int], rho: Sequence[float | None]) -> list[int]:
    """Indices of the Pareto front, simplest first: at each complexity the best ρ (earliest index
    on ties), kept only if it is strictly better than every simpler tree's. None ρ never enters."""
    best: dict[int, int] = {}
    for i, (c, r) in enumerate(zip(complexity, rho)):
        if r is not None and math.isfinite(r) and (c not in best or r > rho[best[c]]):
            best[c] = i
    front, top = [], -math.inf
    for c in sorted(best):
        if rho[best[c]] > top:
            front.append(best[c])
            top = rho[best[c]]
    return front


def pysr_scores(complexity: Sequence[int], rho: Sequence[float]) -> list[float]:
    """PySR's score of each front tree (simplest first): the drop of log loss, loss = 1 - ρ,
    per unit of complexity from the previous front tree; the simplest tree scores 0."""
    log_loss = [math.log(max(1.0 - r, _MIN_LOSS)) for r in rho]
    return [0.0] + [-(log_loss[i] - log_loss[i - 1]) / (complexity[i] - complexity[i - 1])
                    for i in range(1, len(rho))]


def renamed_select(select: str) -> str | None:
    """A line for a `--select` value whose meaning changed with the PySR names (None: unchanged)."""
    how, _ = parse_select(select)
    if select not in RENAMED_SELECT:
        return None
    return (f"--select {select} now means PySR's {how!r}; what lpzero 0.1 called {select!r} is "
            f"--select {RENAMED_SELECT[select]}")


def select_model(select: str, complexity: Sequence[int], rho: Sequence[float]) -> int | None:
    """Position in the front (given simplest first, as `pareto_front` orders it) of the tree
    `select` picks; None for "accuracy", which keeps the final selection's first tree."""
    how, delta = parse_select(select)
    if how == "accuracy" or not rho:
        return None
    top = max(rho)
    if how == "simplest":
        return next(i for i, r in enumerate(rho) if r >= top - delta)
    loss = [max(1.0 - r, _MIN_LOSS) for r in rho]
    scores = pysr_scores(complexity, rho)
    eligible = [i for i in range(len(rho)) if how == "score" or loss[i] <= SCORE_LOSS_FACTOR * min(loss)]
    return max(eligible, key=lambda i: (scores[i], -i))  # ties: the simpler tree


#: the forms of `--parsimony` ("0": none, today's search)
PARSIMONY_FORMS = ("COEF", "double:FITNESS_SIZE,PARSIMONY_SIZE")


def parse_parsimony(parsimony: str) -> tuple[str, tuple[float, ...]]:
    """("coefficient", (COEF,)) or ("double", (FITNESS_SIZE, PARSIMONY_SIZE)) of a `--parsimony`
    value; LPZeroError if malformed (a coefficient below 0, a fitness tournament under 1 or a
    parsimony tournament outside DEAP's [1, 2])."""
    how, sep, arg = parsimony.partition(":")
    if not sep:
        try:
            coefficient = float(parsimony)
        except ValueError:
            coefficient = math.nan
        if math.isfinite(coefficient) and coefficient >= 0:
            return "coefficient", (coefficient,)
        raise LPZeroError(f"--parsimony {parsimony!r}: a nonnegative coefficient, e.g. 0.001, "
                          "or double:FITNESS_SIZE,PARSIMONY_SIZE")
    if how == "double":
        try:
            fitness_size, parsimony_size = (float(x) for x in arg.split(","))
        except ValueError:
            fitness_size = parsimony_size = math.nan
        if math.isfinite(fitness_size) and fitness_size >= 1 and fitness_size == int(fitness_size) \
                and 1 <= parsimony_size <= 2:
            return "double", (int(fitness_size), parsimony_size)
        raise LPZeroError(f"--parsimony {parsimony!r}: double takes a fitness tournament size (an integer, at "
                          "least 1) and a parsimony tournament size in [1, 2], e.g. double:7,1.4")
    raise LPZeroError(f"unknown --parsimony {parsimony!r} (one of: {', '.join(PARSIMONY_FORMS)})")


def canonical_parsimony(parsimony: str) -> str:
    """One spelling of each `--parsimony` value ("0.0" and "0" are one setting; "1e-3" is "0.001"), as a
    checkpoint records it, so a resume is refused only for another setting."""
    how, args = parse_parsimony(parsimony)
    numbers = ",".join(repr(float(x)).removesuffix(".0") for x in args)
    return f"double:{numbers}" if how == "double" else numbers


def penalized_fitness(ind: gp.PrimitiveTree, evaluation: Evaluation, coefficient: float,
                      complexity: Callable[[gp.PrimitiveTree], int]) -> float:
    """gplearn's parsimony: the selection fitness |ρ| - `coefficient` x complexity; an invalid proxy
    keeps the invalid fitness (`lpzero.search.fitness` decides it)."""
    if not evaluation.valid:
        return evaluation.fitness
    return evaluation.fitness - coefficient * complexity(ind)
