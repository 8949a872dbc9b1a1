"""DEAP toolboxes for proxy search: `typed` (general typed trees) and `paper`.

Both are ordinary `deap.base.Toolbox` objects with the usual registrations, so a
research script can re-register any of them before running the same loop::

    tb = build_toolbox("typed", evaluate)
    register_operator(tb, "mutate", gp.mutNodeReplacement, pset=tb.pset)

`register_operator` is `tb.register` plus what `build_toolbox` puts on its own `mate` and
`mutate`: the height limit (`gp.staticLimit`) and, when the setup has RPS on, the RPS guard,
so a re-registered operator neither grows trees without bound nor brings RPS back under `--no-rps`.

Registrations: `individual`, `population(n)`, `compile`, `evaluate` (a tree ->
an `Evaluation`, which iterates as DEAP's `(fitness,)`; a plain tuple works too),
`select(population, k)` (k random parents from the top `fraction` of the
population, paper Algorithm 1), `mate`, `mutate` (each returning a tuple of
offspring, RPS applied as a decorator unless disabled), `map` (DEAP's default;
register a pool's map to evaluate in parallel), `record(ind)` / `from_record(rec)`
(an individual as JSON and back, for checkpoints),
`complexity(ind)` (`lpzero.search.complexity.tree_complexity` with the toolbox's op table),
`selection_fitness(ind, evaluation)` (only under `--parsimony COEF`: the fitness selection sees).
Attributes: `pset`, `ops`, `rps_log`, `kind`, `rps` (RPS on), `max_height` (the height limit of `mate` and `mutate`;
None for the paper toolbox, whose genome fixes the tree's shape). The loop
(`lpzero.search.loop`) uses nothing else.

All randomness goes through the `random` module, which the CLI seeds, as DEAP's
own operators do.
"""
from __future__ import annotations

import math
import operator
import random
from typing import Callable

from deap import base, creator, gp, tools

from lpzero.registry import Registry
from lpzero.primitives import OPS, OpTable, build_primitive_set, generate_typed, parse_tree

from .fitness import INVALID_FITNESS
from .complexity import parse_parsimony, penalized_fitness, tree_complexity
from .genome import GenomeError, PaperGenes, crossover_genes, genes_to_tree, mutate_genes, random_genes
from .rps import RPSLog, rps_guard, violations

TOOLBOXES = ("typed", "paper")


def ensure_creator() -> None:
    """Create DEAP's fitness and individual classes once (never at import time)."""
    if not hasattr(creator, "ProxyFitness"):
        creator.create("ProxyFitness", base.Fitness, weights=(1.0,))
    if not hasattr(creator, "ProxyTree"):
        creator.create("ProxyTree", gp.PrimitiveTree, fitness=creator.ProxyFitness)


def select_from_top(population: list, k: int, fraction: float = 0.1) -> list:
    """k distinct random parents from the best `fraction` of the population."""
    ranked = sorted(population, key=lambda ind: ind.fitness.values[0], reverse=True)
    pool = ranked[: max(k, math.ceil(fraction * len(ranked)))]
    return random.sample(pool, k)


def cx_one_point(ind1, ind2):
    """Swap a random subtree of ind1 with one of the same type in ind2 (in place).

    DEAP's `gp.cxOnePoint` draws the type from a set of classes, whose order follows
    memory addresses and so changes from process to process; here the candidate types
    are ordered by name, so a seeded run repeats exactly in any process.
    """
    if len(ind1) < 2 or len(ind2) < 2:
        return ind1, ind2
    at1: dict[type, list[int]] = {}
    at2: dict[type, list[int]] = {}
    for i, node in enumerate(ind1[1:], 1):
        at1.setdefault(node.ret, []).append(i)
    for i, node in enumerate(ind2[1:], 1):
        at2.setdefault(node.ret, []).append(i)
    common = sorted(set(at1) & set(at2), key=lambda t: t.__name__)
    if common:
        t = random.choice(common)
        s1 = ind1.searchSubtree(random.choice(at1[t]))
        s2 = ind2.searchSubtree(random.choice(at2[t]))
        ind1[s1], ind2[s2] = ind2[s2], ind1[s1]
    return ind1, ind2


def _unique_population(toolbox: base.Toolbox, n: int, check_rps: bool, max_draws: int = 100_000) -> list:
    population, seen = [], set()
    for _ in range(max_draws):
        if len(population) == n:
            return population
        ind = toolbox.individual()
        key = str(ind)
        if key in seen:
            continue
        if check_rps:
            reasons = violations(ind, toolbox.ops)
            if reasons:
                toolbox.rps_log.record(reasons)
                continue
        seen.add(key)
        population.append(ind)
    raise RuntimeError(f"could not draw {n} distinct valid proxies in {max_draws} tries")


def _paper_individual(pset: gp.PrimitiveSetTyped, genes: PaperGenes, ops: OpTable):
    ind = creator.ProxyTree(genes_to_tree(genes, pset, ops))
    ind.genes = genes
    return ind


def _retry(make: Callable[[], PaperGenes], pset, ops, tries: int = 100):
    """A genome from `make()` that has a typed tree (crossover can break level order)."""
    for _ in range(tries):
        genes = make()
        try:
            return _paper_individual(pset, genes, ops)
        except GenomeError:
            continue
    return None


def to_record(ind) -> dict:
    """An individual as JSON: its tree, fitness and (paper toolbox) genes."""
    rec = {"tree": str(ind), "fitness": ind.fitness.values[0]}
    genes = getattr(ind, "genes", None)
    if genes is not None:
        rec["genes"] = genes.to_dict()
    return rec


def from_record(rec: dict, pset: gp.PrimitiveSetTyped):
    """The individual `to_record` wrote, with its fitness."""
    ind = creator.ProxyTree(parse_tree(rec["tree"], pset))
    # null: an invalid proxy's fitness as a strict JSON file without its why-key holds it
    ind.fitness.values = (INVALID_FITNESS if rec["fitness"] is None else float(rec["fitness"]),)
    if "genes" in rec:
        ind.genes = PaperGenes.from_dict(rec["genes"])
    return ind


#: the operators that make offspring: limited in height and RPS-guarded
VARIATION_OPERATORS = ("mate", "mutate")


def register_operator(tb: base.Toolbox, alias: str, function: Callable, *args, **kwargs) -> None:
    """`tb.register(alias, function, *args, **kwargs)`, decorated as `build_toolbox` decorates its own.

    `mate` and `mutate` get the toolbox's height limit (`tb.max_height`, if not None: DEAP's
    `gp.staticLimit` returns a parent in place of a taller offspring) and then, when
    `tb.rps` is on, the RPS guard (`rps_guard`, counting into `tb.rps_log`). Other aliases
    (`select`, `evaluate`, `map`) are registered as they are.
    """
    tb.register(alias, function, *args, **kwargs)
    if alias not in VARIATION_OPERATORS:
        return
    # limit first, RPS outside it: the guard checks the offspring the limit lets through
    if tb.max_height is not None:
        tb.decorate(alias, gp.staticLimit(key=operator.attrgetter("height"), max_value=tb.max_height))
    if tb.rps:
        tb.decorate(alias, rps_guard(tb.rps_log, tb.ops))


def typed_operators(tb: base.Toolbox, init_height: tuple[int, int], n_unary: int) -> None:
    """The typed toolbox's operators: ramped typed trees, one-point crossover, uniform subtree mutation."""
    tb.register("expr", generate_typed, tb.pset, init_height[0], init_height[1])
    tb.register("individual", lambda: creator.ProxyTree(tb.expr()))
    register_operator(tb, "mate", cx_one_point)
    tb.register("expr_mut", generate_typed, min_=0, max_=3)
    register_operator(tb, "mutate", gp.mutUniform, expr=tb.expr_mut, pset=tb.pset)


def paper_operators(tb: base.Toolbox, init_height: tuple[int, int], n_unary: int) -> None:
    """The paper toolbox's operators: fixed-shape genomes of `n_unary` unary ops per branch."""
    pset, ops = tb.pset, tb.ops
    tb.n_unary = n_unary
    tb.register("individual", lambda: _retry(lambda: random_genes(n_unary, random, ops), pset, ops))

    def mate(a, b):
        kids = [_retry(lambda: crossover_genes(a.genes, b.genes, random), pset, ops) for _ in range(2)]
        return tuple(k if k is not None else p for k, p in zip(kids, (a, b)))

    def mutate(a):
        kid = _retry(lambda: mutate_genes(a.genes, n_unary, random, ops), pset, ops)
        return (kid if kid is not None else a,)

    register_operator(tb, "mate", mate)
    register_operator(tb, "mutate", mutate)


def add_parsimony(tb: base.Toolbox, parsimony: str) -> None:
    """Parsimony pressure on `tb` (`--parsimony`): "COEF" > 0 registers `selection_fitness`
    (`penalized_fitness` with `tb.complexity`: what `ind.fitness` holds, ρ stays raw in
    `ind.evaluation`), "double:F,P" registers `select` as DEAP's `selDoubleTournament`
    (fitness first). "0" registers nothing: the search is today's."""
    how, args = parse_parsimony(parsimony)
    if how == "double":
        tb.register("select", tools.selDoubleTournament, fitness_size=args[0], parsimony_size=args[1],
                    fitness_first=True)
    elif args[0] > 0:
        tb.register("selection_fitness", penalized_fitness, coefficient=args[0], complexity=tb.complexity)


#: toolbox kind -> the function registering its individual, mate and mutate (`lpzero.toolboxes` entry points
#: add kinds); `typed` limits tree height, `paper` has fixed-shape trees
TOOLBOX_KINDS: Registry = Registry("toolbox", group="lpzero.toolboxes")
TOOLBOX_KINDS.register("typed", typed_operators, description="typed trees of any shape up to --max-height")
TOOLBOX_KINDS.register("paper", paper_operators, description="the paper's fixed two-branch genome (--unary)")


def build_toolbox(
    kind: str,
    evaluate: Callable,
    *,
    pset: gp.PrimitiveSetTyped | None = None,
    ops: OpTable = OPS,
    rps: bool = True,
    init_height: tuple[int, int] = (2, 5),
    max_height: int = 8,
    n_unary: int = 2,
    select_fraction: float = 0.1,
    parsimony: str = "0",
) -> base.Toolbox:
    """The `typed` or `paper` toolbox (see the module docstring), or a kind registered in `TOOLBOX_KINDS`.

    `pset` is the primitive set the evaluator compiles with (built from `ops` if not given):
    one set for both, so the trees the toolbox makes are the ones the evaluator reads.
    `parsimony` (`lpzero.search.complexity.parse_parsimony`): a coefficient above 0 registers
    `selection_fitness`, "double:F,P" registers DEAP's double tournament as `select`.
    """
    add_operators = TOOLBOX_KINDS.get(kind)
    ensure_creator()
    pset = pset if pset is not None else build_primitive_set(ops)
    tb = base.Toolbox()
    tb.kind, tb.pset, tb.ops, tb.rps_log, tb.rps = kind, pset, ops, RPSLog(), rps
    tb.max_height = None if kind == "paper" else max_height
    tb.register("compile", gp.compile, pset=pset)
    tb.register("evaluate", evaluate)
    tb.register("select", select_from_top, fraction=select_fraction)
    tb.register("complexity", tree_complexity, ops=ops)
    add_parsimony(tb, parsimony)
    tb.register("record", to_record)
    tb.register("from_record", from_record, pset=pset)
    add_operators(tb, init_height, n_unary)
    tb.register("population", lambda n: _unique_population(tb, n, check_rps=rps))
    return tb
