"""The runs of one search: each run's final state and toolbox, and the finalists they offer.

`ProxySearch.run` (`lpzero.search.search`) fills a `SearchRuns`; its `finalists` are what the
final selection, the report and the complexity front start from.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from deap import base, gp, tools

from .fitness import CombinedEvaluator, FitnessEvaluator
from .loop import EvolutionState, identity_function, raw_rank_key


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
