"""One search: the split, the fitness sample, independent runs of Algorithm 1, the final selection.

Protocol (`lpzero evolve`): the architectures are split (seeded) into a search part
and a held-out part; fitness is computed on `sample` architectures drawn from the
search part only. Algorithm 1 runs `runs` times on that sample (seeds derived from
the search's seed); the fittest trees of every run compete in the final selection,
on the whole search part. The held-out part is for the report
(`lpzero.report.evolve.run_search`) and is never read here.
"""
from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
from deap import base, gp, tools

from lpzero.errors import LPZeroError, UnknownNameError
from lpzero.primitives import OPS, OpRegistry, Weighted, build_primitive_set, op_table

from .complexity import DEFAULT_SELECT, parse_parsimony, parse_select
from .fitness import COMBINE, INVALID_FITNESS, CombinedEvaluator, FitnessEvaluator
from .loop import EvolutionState, EvolveSettings, identity_function, raw_rank_key, run_evolution
from .toolbox import TOOLBOXES, build_toolbox

FINAL_SELECTIONS = ("search", "sample")


@dataclass
class SearchSetup:
    """Everything a search is run with besides the data; the CLI's defaults are these."""

    toolbox: str = "typed"
    sample: int = 50
    holdout: float = 0.5
    rps: bool = True
    n_unary: int = 2
    max_height: int = 8
    hall_of_fame: int = 10
    #: independent runs of Algorithm 1 (seeds from `run_seed`); the `hall_of_fame` fittest
    #: proxies of each compete in the final selection. 1 is the paper's single run.
    runs: int = 8
    #: how the final proxy is chosen from the hall of fame: "search" (highest ρ on the whole
    #: search part, of which the fitness sample is a subset) or "sample" (highest fitness)
    final_selection: str = "search"
    #: the found proxy: "best" (the final selection's first tree), "simplest:DELTA" (the simplest
    #: tree of the complexity/search-part-ρ Pareto front within DELTA of its best ρ) or "score"
    #: (PySR's model selection on that front); see `lpzero.search.complexity` (`DEFAULT_SELECT`)
    select: str = DEFAULT_SELECT
    #: parsimony pressure: "0" (none), "COEF" (selection fitness |ρ| - COEF x complexity, gplearn's
    #: coefficient) or "double:FITNESS_SIZE,PARSIMONY_SIZE" (DEAP's double tournament as `select`);
    #: see `lpzero.search.complexity.parse_parsimony`. Reported ρ is always the raw one.
    parsimony: str = "0"
    #: a search on several benchmarks (`lpzero evolve --benchmark a,b`): fitness is the "min" or
    #: "mean" of their |ρ| (`lpzero.search.fitness.COMBINE`); unused on one benchmark
    combine: str = "min"
    evolve: EvolveSettings = field(default_factory=EvolveSettings)

    def __post_init__(self) -> None:
        if self.toolbox not in TOOLBOXES:
            raise UnknownNameError("toolbox", self.toolbox, TOOLBOXES)
        if self.final_selection not in FINAL_SELECTIONS:
            raise UnknownNameError("final selection", self.final_selection, FINAL_SELECTIONS)
        parse_select(self.select)  # a malformed --select fails before any work
        parse_parsimony(self.parsimony)
        if self.combine not in COMBINE:
            raise UnknownNameError("combine", self.combine, tuple(COMBINE))
        problems = []
        if self.sample < 2:
            problems.append(f"sample {self.sample} (at least 2 architectures)")
        if not 0.0 < self.holdout < 1.0:
            problems.append(f"holdout {self.holdout} (a fraction in (0, 1))")
        for name, low in (("runs", 1), ("n_unary", 1), ("max_height", 2), ("hall_of_fame", 1)):
            if getattr(self, name) < low:
                problems.append(f"{name} {getattr(self, name)} (at least {low})")
        if problems:
            raise LPZeroError("invalid search settings: " + "; ".join(problems))


def split_architectures(ids: list[str], holdout: float, seed: int) -> tuple[list[str], list[str]]:
    """(search part, held-out part), shuffled with `seed`; the held-out part is never searched."""
    order = list(ids)
    random.Random(seed).shuffle(order)
    n_hold = int(round(holdout * len(order)))
    if n_hold >= len(order) or (holdout > 0 and n_hold == 0):
        raise LPZeroError(f"--holdout {holdout} leaves no architectures on one side of {len(order)}")
    return sorted(order[n_hold:], key=ids.index), sorted(order[:n_hold], key=ids.index)


def search_sample(ids: list[str], setup: SearchSetup) -> tuple[list[str], list[str], list[str]]:
    """(search part, held-out part, fitness sample drawn from the search part) of a search's seed."""
    seed = setup.evolve.seed
    search_ids, held_ids = split_architectures(ids, setup.holdout, seed)
    if len(search_ids) < 2:
        raise LPZeroError(f"the search part has {len(search_ids)} architecture(s); fitness needs at least 2 "
                          "(more architectures or a smaller --holdout)")
    sample_ids = sorted(random.Random(seed + 1).sample(search_ids, min(setup.sample, len(search_ids))), key=ids.index)
    return search_ids, held_ids, sample_ids


def run_seed(seed: int, run: int) -> int:
    """Seed of run `run` of a search seeded `seed`; run 0 uses `seed` itself, so a one-run
    search is exactly the paper's Algorithm 1 with that seed."""
    return seed if run == 0 else random.Random(f"lpzero-run-{seed}-{run}").getrandbits(31)


@dataclass
class SearchRuns:
    """The independent runs of Algorithm 1 of one search, on one fitness sample (or one per benchmark)."""

    evaluator: FitnessEvaluator | CombinedEvaluator
    pset: gp.PrimitiveSetTyped
    states: list[EvolutionState] = field(default_factory=list)
    toolboxes: list[base.Toolbox] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)

    def finalists(self, per_run: int, distinct: str) -> list[tuple[int, object]]:
        """(run, tree) of the `per_run` fittest valid proxies of every run, fittest first.

        A proxy several runs found (same ranking of the sample, or same text) is listed
        once, as its smallest tree (of equal trees, the earliest run's). The trees are
        copies, as a DEAP hall of fame holds them.
        """
        identity = identity_function(distinct)
        # best raw |ρ| first (under --parsimony the population is ordered by the penalised fitness);
        # smaller trees first among equally fit, so of similar proxies the hall of fame keeps the
        # first it sees, the smallest; a stable sort leaves equal trees in run order
        pool = sorted(((run, ind) for run, state in enumerate(self.states)
                       for ind in sorted((ind for ind in state.population if ind.evaluation.valid),
                                         key=raw_rank_key)[:per_run]),
                      key=lambda pair: raw_rank_key(pair[1]))
        if not pool:
            return []
        # room for all: the hall of fame only merges similar proxies, it drops no distinct one
        hof = tools.HallOfFame(len(pool), similar=lambda a, b: identity(a) == identity(b))
        hof.update([ind for _, ind in pool])
        run_of: dict = {}
        for run, ind in pool:
            run_of.setdefault(identity(ind), run)
        # DEAP orders by fitness alone; ties go smaller tree first, as everywhere in the search
        return sorted(((run_of[identity(ind)], ind) for ind in hof), key=lambda pair: raw_rank_key(pair[1]))


def fingerprint(*arrays: object) -> str:
    """A short hash of arrays' contents (what a checkpoint remembers of its fitness data)."""
    digest = hashlib.sha1()
    for a in arrays:
        digest.update(np.ascontiguousarray(np.asarray(a, dtype=np.float64)).tobytes())
    return digest.hexdigest()[:16]


def setup_context(setup: SearchSetup) -> dict:
    """What of `setup` a run's checkpoint records besides its `EvolveSettings`."""
    context = {"toolbox": setup.toolbox, "rps": setup.rps, "n_unary": setup.n_unary, "max_height": setup.max_height}
    for key in ("parsimony", "combine"):  # absent by default: earlier checkpoints resume as they were
        if getattr(setup, key) != getattr(SearchSetup, key):
            context[key] = getattr(setup, key)
    return context


def ops_context(ops: OpRegistry) -> dict:
    """What a run's checkpoint records of its op table: nothing for the built-in one (its checkpoints
    say nothing), else the table's path, so a resume with another table is refused."""
    return {} if ops is OPS else {"ops": ops.path}


def evolve_on(inputs: Mapping[str, Weighted], truth: np.ndarray, setup: SearchSetup, out: Path | None = None,
              resume: bool = False, progress: Callable[[int, float], None] | None = None,
              customize: Callable[[base.Toolbox], None] | None = None, ops: OpRegistry | str | None = None,
              context: dict | None = None) -> SearchRuns:
    """`setup.runs` runs of Algorithm 1 with fitness on `inputs`/`truth` (the search sample).

    `ops` is the op table (an `OpRegistry`, or a name `lpzero.primitives.op_table` reads;
    default: the built-in `OPS`). One primitive set of it, built once, serves the evaluator
    and every run's toolbox (its own, not the shared `pset_of`: a script may change it). Run r is
    seeded `run_seed(seed, r)` and checkpoints into `out/run_<r>/`. The runs share one
    evaluator, so a proxy any run has scored costs the others nothing. `customize(toolbox)`,
    if given, may re-register DEAP operators on each run's toolbox before its loop.
    `progress(done, best)` counts iterations over all runs. Each run's checkpoint records
    `context`, the search settings and a fingerprint of the fitness data; `resume` refuses a
    checkpoint that differs in any of them.
    """
    return _evolve(lambda pset: FitnessEvaluator(pset, inputs, truth), fitness_data(inputs, truth), setup, out,
                   resume, progress, customize, ops, context)


def evolve_on_several(data: Mapping[str, tuple[Mapping[str, Weighted], np.ndarray]], setup: SearchSetup,
                      out: Path | None = None, resume: bool = False,
                      progress: Callable[[int, float], None] | None = None,
                      customize: Callable[[base.Toolbox], None] | None = None, ops: OpRegistry | str | None = None,
                      context: dict | None = None) -> SearchRuns:
    """As `evolve_on`, with fitness on several benchmarks' search samples at once: `data` maps each
    benchmark's name to its (inputs, truth); fitness combines their |ρ| by `setup.combine`
    (`lpzero.search.fitness.CombinedEvaluator`; the first benchmark gives the formula's orientation)."""
    if not data:
        raise LPZeroError("a search on several benchmarks needs at least one")

    def evaluator(pset: gp.PrimitiveSetTyped) -> CombinedEvaluator:
        return CombinedEvaluator({name: FitnessEvaluator(pset, inputs, truth) for name, (inputs, truth) in data.items()},
                                 setup.combine)

    digests = " ".join(f"{name}={fitness_data(inputs, truth)}" for name, (inputs, truth) in data.items())
    digest = hashlib.sha1(digests.encode()).hexdigest()[:16]
    return _evolve(evaluator, digest, setup, out, resume, progress, customize, ops, context)


def fitness_data(inputs: Mapping[str, Weighted], truth: np.ndarray) -> str:
    """The fingerprint a checkpoint keeps of one fitness sample (its ground truth and inputs)."""
    return fingerprint(truth, *(inputs[s].values for s in sorted(inputs)))


def _evolve(make_evaluator: Callable[[gp.PrimitiveSetTyped], Callable], data_fingerprint: str, setup: SearchSetup,
            out: Path | None, resume: bool, progress: Callable[[int, float], None] | None,
            customize: Callable[[base.Toolbox], None] | None, ops: OpRegistry | str | None,
            context: dict | None) -> SearchRuns:
    """The runs of `evolve_on` with the evaluator `make_evaluator(pset)` (see there)."""
    ops = op_table(ops)
    context = {**(context or {}), **setup_context(setup), "fitness_data": data_fingerprint, **ops_context(ops)}
    pset = build_primitive_set(ops)
    runs = SearchRuns(make_evaluator(pset), pset)
    best_so_far = INVALID_FITNESS
    for r in range(setup.runs):
        tb = build_toolbox(setup.toolbox, runs.evaluator, pset=pset, ops=ops, rps=setup.rps, n_unary=setup.n_unary,
                           max_height=setup.max_height, select_fraction=setup.evolve.top_fraction,
                           parsimony=setup.parsimony)
        if customize is not None:
            customize(tb)
        settings = replace(setup.evolve, seed=run_seed(setup.evolve.seed, r))

        def run_progress(it: int, best: float, done: int = r * settings.iterations) -> None:
            nonlocal best_so_far
            best_so_far = max(best_so_far, best)
            if progress is not None:
                progress(done + it, best_so_far)

        state = run_evolution(tb, settings, None if out is None else out / f"run_{r}", resume=resume,
                              progress=run_progress, context=context)
        runs.states.append(state)
        runs.toolboxes.append(tb)
        runs.seeds.append(settings.seed)
    return runs


def select_final(part_rho: Sequence[float | None], how: str) -> list[int]:
    """Order in which hall-of-fame trees (best sample fitness first) are offered as the found proxy.

    `part_rho[i]` is tree i's ρ, oriented as on the sample, on the whole search part (None
    if invalid there). "search" orders by it: fitness on 50 architectures cannot separate
    the hall of fame, and more search architectures can; "sample" keeps fitness order.
    """
    if how == "sample":
        return list(range(len(part_rho)))
    if how != "search":
        raise UnknownNameError("final selection", how, FINAL_SELECTIONS)
    return sorted(range(len(part_rho)), key=lambda i: math.inf if part_rho[i] is None else -part_rho[i])
