"""One proxy search over a list of benchmarks (a search on one benchmark is a list of one).

Protocol (`lpzero evolve`; docs/concepts.md, "The held-out protocol"): each benchmark's
architectures are split (seeded) into a search part and a held-out part, and fitness is
computed on `sample` architectures drawn from each search part; on several benchmarks it is
`combine` ("min" or "mean") of their |ρ|, each divided by a scale with `normalize` (the best
hand-designed proxy's |ρ| on the benchmark's sample). Algorithm 1 runs `runs` times (seeds derived from
the search's seed), run r in the folder `run_<r>/` of the search's output folder, with its
checkpoint. The fittest trees of every run compete in the final selection on the whole
search part(s); `--select` picks the found proxy from the complexity front over the runs'
final populations. Held-out figures are computed for the report only and never take part
in a choice.

`ProxySearch` owns all of this: the run folders, the resume checks, the runs (`run`), the
finalists, the front and the choice (`conclude`). It builds no model: a benchmark's inputs
come from its cache (`SearchPart.of_cache`), or from memory (`evolve_on`, for scripts).
"""
from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
from deap import base, gp

from lpzero.errors import LPZeroError
from lpzero.primitives import OpTable, Weighted, build_primitive_set, op_table

from .complexity import pareto_front, select_model, tree_complexity
from .fitness import COMBINE, CombinedEvaluator, Evaluation, FitnessEvaluator, correlation
from .loop import CHECKPOINT, LoopCheckpoint, LoopStatistics, check_checkpoint, rank_key, run_evolution
from .runs import SearchRuns
from .protocol import (SearchPart, SearchSetup, fingerprint, hand_designed_scale, ops_context, run_seed,
                       select_final)
from .toolbox import build_toolbox

#: trees of one complexity scored on the search part for the front: the fittest on the fitness sample
PER_COMPLEXITY = 4


def fitness_data(inputs: Mapping[str, Weighted], truth: np.ndarray) -> str:
    """The fingerprint a checkpoint keeps of one fitness sample (its ground truth and inputs)."""
    return fingerprint(truth, *(inputs[s].values for s in sorted(inputs)))


@dataclass
class Scored:
    """A tree of a search's result with its figures: its run, complexity, the search-part record that
    decided about it (several benchmarks: the combined one), per benchmark its orientation and ρ on the
    sample, the search part, the held-out part and the whole benchmark (`figures`), and the first
    benchmark's held-out and whole figures oriented as the formula is (`first`)."""

    run: int
    tree: gp.PrimitiveTree
    complexity: int
    search_part: dict
    figures: list[dict]
    first: dict


@dataclass
class SearchResult:
    """What a search decided: the hall of fame in final-selection order, the complexity front
    (simplest first) and the found proxy, each a `Scored` tree."""

    runs: SearchRuns
    parts: list[SearchPart]
    setup: SearchSetup
    ops: OpTable
    pset: gp.PrimitiveSetTyped
    hall_of_fame: list[Scored]
    front: list[Scored]
    chosen: Scored
    #: how many finalists competed in the final selection
    candidates: int
    #: each benchmark's fitness scale with `--normalize` ({"proxy", "spearman"}); empty without
    scales: dict[str, dict] = field(default_factory=dict)

    @property
    def sample_inputs(self) -> Mapping[str, Weighted]:
        """The first benchmark's fitness-sample inputs (where guard activity is reported)."""
        evaluator = self.runs.evaluator
        return (evaluator.evaluators[self.parts[0].name] if isinstance(evaluator, CombinedEvaluator)
                else evaluator).inputs


class ProxySearch:
    """A search for one formula over `parts` (see the module docstring), writing its runs under `out`."""

    def __init__(self, parts: Sequence[SearchPart], setup: SearchSetup, out: Path | None = None,
                 ops: OpTable | str | None = None) -> None:
        if not parts:
            raise LPZeroError("a search needs at least one benchmark")
        self.parts, self.setup, self.out = list(parts), setup, None if out is None else Path(out)
        self.ops = op_table(ops)
        self.pset = build_primitive_set(self.ops)
        self._scales: dict[str, dict] | None = None

    def scales(self) -> dict[str, dict]:
        """Each benchmark's fitness scale, {"proxy", "spearman"} (`SearchSetup.normalize`; none on one
        benchmark or without normalisation); read from the caches once they are filled."""
        if self._scales is None:
            normalized = len(self.parts) > 1 and self.setup.normalize == "hand-designed"
            self._scales = {p.name: hand_designed_scale(p) for p in self.parts} if normalized else {}
        return self._scales

    def _divisors(self) -> dict[str, float]:
        return {name: abs(scale["spearman"]) for name, scale in self.scales().items()}

    def run_folder(self, run: int) -> Path | None:
        """Where run `run` checkpoints (None: a search without an output folder)."""
        return None if self.out is None else self.out / f"run_{run}"

    def context(self) -> dict:
        """What every run's checkpoint records of this search besides its settings and the fitness data's
        fingerprint: the data (one benchmark's record, or every benchmark's), the setup and the op table."""
        data = self.parts[0].record if len(self.parts) == 1 else {"benchmarks": [p.record for p in self.parts]}
        return {**data, **self.setup.context(), **ops_context(self.ops)}

    def checkpoints(self) -> list[Path]:
        """The run checkpoints a `--resume` would continue from (none: it starts a new search)."""
        folders = [self.run_folder(r) for r in range(self.setup.runs)]
        return [f / CHECKPOINT for f in folders if f is not None and (f / CHECKPOINT).is_file()]

    def check_resume(self) -> None:
        """ResultError, before any cache is filled, if a run's checkpoint was written for another search
        (the fitness data's fingerprint, unknown until the inputs are cached, is checked when a run resumes)."""
        for r in range(self.setup.runs):
            path = self.run_folder(r) / CHECKPOINT
            if path.is_file():
                check_checkpoint(path, replace(self.setup.evolve, seed=run_seed(self.setup.evolve.seed, r)),
                                 self.context(), unknown=("fitness_data",))

    def _evaluator(self) -> tuple[FitnessEvaluator | CombinedEvaluator, str]:
        """The fitness function on the parts' samples (one benchmark: its own) and its data's fingerprint."""
        data = {p.name: (p.load(p.sample_ids), p.gt(p.sample_ids)) for p in self.parts}
        if len(self.parts) == 1:
            (inputs, truth), = data.values()
            return FitnessEvaluator(self.pset, inputs, truth), fitness_data(inputs, truth)
        divisors = self._divisors()
        evaluator = CombinedEvaluator({name: FitnessEvaluator(self.pset, inputs, truth)
                                       for name, (inputs, truth) in data.items()}, self.setup.combine, divisors)
        digests = " ".join(f"{name}={fitness_data(inputs, truth)}" + (f"/{divisors[name]!r}" if divisors else "")
                           for name, (inputs, truth) in data.items())
        return evaluator, hashlib.sha1(digests.encode()).hexdigest()[:16]

    def run(self, resume: bool = False, progress: Callable[[int, float], None] | None = None,
            customize: Callable[[base.Toolbox], None] | None = None) -> SearchRuns:
        """`setup.runs` runs of Algorithm 1 on the fitness sample(s); each checkpoints into its run folder.

        The runs share one evaluator, so a proxy any run has scored costs the others nothing.
        `customize(toolbox)`, if given, may re-register DEAP operators on each run's toolbox before its
        loop. `progress(done, best)` counts iterations over all runs. `resume` continues from the runs'
        checkpoints, refusing one written for another search.
        """
        setup = self.setup
        evaluator, data_fingerprint = self._evaluator()
        context = {**self.context(), "fitness_data": data_fingerprint}
        runs = SearchRuns(evaluator, self.pset)
        best_so_far = -math.inf
        for r in range(setup.runs):
            tb = build_toolbox(setup.toolbox, evaluator, pset=self.pset, ops=self.ops, rps=setup.rps,
                               n_unary=setup.n_unary, max_height=setup.max_height,
                               select_fraction=setup.evolve.top_fraction, parsimony=setup.parsimony)
            if customize is not None:
                customize(tb)
            settings = replace(setup.evolve, seed=run_seed(setup.evolve.seed, r))

            def run_progress(it: int, best: float, done: int = r * settings.iterations) -> None:
                nonlocal best_so_far
                best_so_far = max(best_so_far, best)
                if progress is not None:
                    progress(done + it, best_so_far)

            folder = self.run_folder(r)
            checkpoint = None if folder is None else LoopCheckpoint.of_toolbox(tb, folder, context, resume)
            state = run_evolution(tb, settings, checkpoint, LoopStatistics.of_toolbox(tb), progress=run_progress)
            runs.states.append(state)
            runs.toolboxes.append(tb)
            runs.seeds.append(settings.seed)
        return runs

    def conclude(self, runs: SearchRuns) -> SearchResult:
        """The final selection, the complexity front and the found proxy of `runs`, with every figure;
        LPZeroError if no run found a valid proxy."""
        setup = self.setup
        finalists = runs.finalists(setup.hall_of_fame, setup.evolve.distinct)
        if not finalists:
            invalid = sum((s.invalid for s in runs.states), Counter())
            raise LPZeroError(f"no valid proxy in {setup.runs} run(s) of {setup.evolve.iterations} iterations "
                              f"(invalid by reason: {dict(invalid)}); try more iterations or a larger --sample")
        figures = _Figures(self.parts, self.pset, setup.combine, self._divisors())
        scored = [figures.scored(run, ind, tree_complexity(ind, self.ops)) for run, ind in finalists]
        order = select_final([s.search_part["spearman"] for s in scored], setup.final_selection)
        hall_of_fame = [scored[i] for i in order[: setup.hall_of_fame]]
        pool = [figures.scored(run, ind, c) for run, ind, c in front_pool(runs, self.ops)]
        front = [pool[i] for i in pareto_front([s.complexity for s in pool], [s.search_part["spearman"] for s in pool])]
        chosen = select_model(setup.select, [s.complexity for s in front], [s.search_part["spearman"] for s in front])
        return SearchResult(runs, self.parts, setup, self.ops, self.pset, hall_of_fame, front,
                            hall_of_fame[0] if chosen is None else front[chosen], len(finalists), self.scales())


class _Figures:
    """Each tree's figures on every part, computed once per tree (a tree of both the hall of fame and the
    front is scored once)."""

    def __init__(self, parts: list[SearchPart], pset: gp.PrimitiveSetTyped, combine: str,
                 divisors: Mapping[str, float]) -> None:
        self.parts, self.combine, self.divisors = parts, combine, divisors

        def scorer(part: SearchPart, some: list[str]) -> FitnessEvaluator:
            return FitnessEvaluator(pset, part.load(some), part.gt(some))

        self.scorers = [{"search_part": scorer(p, p.search_ids), "heldout": scorer(p, p.held_ids),
                         "whole": scorer(p, p.ids)} for p in parts]
        self._made: dict[str, tuple[dict, list[dict], dict]] = {}

    def scored(self, run: int, ind, complexity: int) -> Scored:
        key = str(ind)
        if key not in self._made:
            self._made[key] = self._figures(ind)
        return Scored(run, ind, complexity, *self._made[key])

    def _figures(self, ind) -> tuple[dict, list[dict], dict]:
        found: Evaluation = ind.evaluation
        figures = []
        for p, scorers in zip(self.parts, self.scorers):
            ev = found.parts[p.name] if found.parts is not None else found
            sign = ev.orientation
            figures.append({"benchmark": p.name, "orientation": sign,
                            "search": {"spearman": sign * ev.spearman, "fitness": ev.fitness, "n": len(p.sample_ids)},
                            **{key: correlation(sign * e.scores(ind), np.asarray(e.truth)) for key, e in scorers.items()}})
        first = {key: figures[0][key] for key in ("heldout", "whole")}
        if found.orientation != figures[0]["orientation"]:  # a combined |ρ| of 0 is oriented +1 whatever the first's
            first = {key: correlation(found.orientation * e.scores(ind), np.asarray(e.truth))
                     for key, e in self.scorers[0].items() if key in first}
        if len(figures) == 1:
            return figures[0]["search_part"], figures, first
        rho = [f["search_part"]["spearman"] for f in figures]
        if None not in rho and self.divisors:  # as fitness combines them: each ρ over its scale
            rho = [r / self.divisors[f["benchmark"]] for r, f in zip(rho, figures)]
        reasons = [f"{f['benchmark']}: {f['search_part']['invalid_reason']}" for f in figures
                   if f["search_part"]["spearman"] is None]
        combined = {"spearman": None if reasons else float(COMBINE[self.combine](rho)), "kendall": None,
                    "n": sum(f["search_part"]["n"] for f in figures), "invalid_reason": "; ".join(reasons) or None,
                    "combine": self.combine, **({"normalized": True} if self.divisors else {})}
        return combined, figures, first


def front_pool(runs: SearchRuns, ops: OpTable) -> list[tuple[int, object, int]]:
    """(run, tree, complexity) of the trees the front is built from: over the valid trees of every run's
    final population, fittest first (`rank_key`, runs in order), of each complexity the `PER_COMPLEXITY`
    fittest on the fitness sample.

    Final populations, not every tree ever scored: they are checkpointed, so a resumed search gets the
    front an uninterrupted one gets.
    """
    seen: set[str] = set()
    pool, per_complexity = [], Counter()
    for run, ind in sorted(((run, ind) for run, state in enumerate(runs.states) for ind in state.population
                            if ind.evaluation.valid), key=lambda pair: rank_key(pair[1])):
        complexity = tree_complexity(ind, ops)
        # scoring every tree on the search part cost a default GPT-2 search 40 % more time; the
        # fittest few of each complexity on the sample are where its best search-part tree lies
        if str(ind) not in seen and per_complexity[complexity] < PER_COMPLEXITY:
            seen.add(str(ind))
            per_complexity[complexity] += 1
            pool.append((run, ind, complexity))
    return pool


def evolve_on(inputs: Mapping[str, Weighted], truth: np.ndarray, setup: SearchSetup, out: Path | None = None,
              resume: bool = False, progress: Callable[[int, float], None] | None = None,
              customize: Callable[[base.Toolbox], None] | None = None, ops: OpTable | str | None = None,
              context: dict | None = None) -> SearchRuns:
    """`setup.runs` runs of Algorithm 1 with fitness on `inputs`/`truth` held in memory (a research
    script's search sample): `ProxySearch(...).run` on one `SearchPart.in_memory`. `context` is what the
    runs' checkpoints record of the data (a resume with another is refused)."""
    part = SearchPart.in_memory(inputs, truth, record=context)
    return ProxySearch([part], setup, out, ops).run(resume, progress, customize)


__all__ = ["PER_COMPLEXITY", "ProxySearch", "Scored", "SearchResult", "evolve_on", "fitness_data", "front_pool"]
