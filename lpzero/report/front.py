"""The records of a search's trees (hall of fame, Pareto front, best.json) and the front's file.

`EntryMaker` turns one tree into the record `hall_of_fame.json`, `pareto_front.json` and
best.json share: tree, complexity, ρ on the sample, the search part, the held-out part
and the whole benchmark, formulas and guard activity. `pareto_entries` builds the front
of complexity vs search-part ρ over every valid tree of every run's final population
(`lpzero.search.complexity`); held-out figures are computed for the report only.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
from deap import gp

from lpzero.errors import ResultError
from lpzero.primitives import OpRegistry
from lpzero.search import FitnessEvaluator, SearchRuns, correlation
from lpzero.search.complexity import pareto_front, tree_complexity
from lpzero.search.loop import rank_key

from .export import proxy_formula
from .protection import active_nodes, guard_activity

#: the Pareto front's file in a search's folder (a list, simplest tree first)
FRONT_FILE = "pareto_front.json"
HALL_OF_FAME_FILE = "hall_of_fame.json"


@dataclass
class EntryMaker:
    """Makes the record of one tree; every figure is of the oriented proxy, as its formula shows."""

    pset: gp.PrimitiveSetTyped
    table: OpRegistry
    #: the fitness sample's inputs (guard activity is reported on them)
    sample_inputs: Mapping
    n_sample: int
    heldout: FitnessEvaluator
    whole: FitnessEvaluator
    _made: dict = field(default_factory=dict, init=False, repr=False)

    def __call__(self, run: int, ind, part: dict) -> dict:
        key = (run, str(ind))
        if key not in self._made:  # a tree of both the hall of fame and the front is scored once
            self._made[key] = self._entry(run, ind, part)
        return dict(self._made[key])

    def _entry(self, run: int, ind, part: dict) -> dict:
        found = ind.evaluation
        sign = found.orientation
        protection = [g.to_dict() for g in guard_activity(ind, self.pset, self.sample_inputs, self.table)]
        guarded = active_nodes(protection)
        return {
            "tree": str(ind),
            "genes": ind.genes.to_dict() if hasattr(ind, "genes") else None,
            "orientation": sign,
            "run": run,
            "complexity": tree_complexity(ind, self.table),
            "search": {"spearman": sign * found.spearman, "fitness": found.fitness, "n": self.n_sample},
            "search_part": part,
            "heldout": correlation(sign * self.heldout.scores(ind), np.asarray(self.heldout.truth)),
            "whole": correlation(sign * self.whole.scores(ind), np.asarray(self.whole.truth)),
            "formula": proxy_formula(ind, sign, "text", self.table, guarded),
            "latex": proxy_formula(ind, sign, "latex", self.table, guarded),
            "protection": protection,
        }


#: trees of one complexity scored on the search part for the front: the fittest on the fitness sample
PER_COMPLEXITY = 4


def pareto_entries(runs: SearchRuns, search_part: FitnessEvaluator | None, make: EntryMaker,
                   part_of: Callable[[gp.PrimitiveTree], dict] | None = None) -> list[dict]:
    """The front over the valid trees of every run's final population, simplest first: of each
    complexity, the `PER_COMPLEXITY` fittest on the fitness sample are scored on the search part.

    Trees are taken fittest first (`rank_key`, runs in order), so of equally good trees of
    one complexity the front keeps the one the search ranked first; only search-part ρ
    (oriented as on the sample) decides. Final populations, not every tree ever scored: they are
    checkpointed, so a resumed search gets the front an uninterrupted one gets (the evaluator's
    memo of scored trees does not survive a resume, nor fill under a process pool's map).
    `part_of(tree)`, if given, is a tree's search-part record in place of its ρ on `search_part`
    (a search on several benchmarks: the combined one).
    """
    seen: set[str] = set()
    pool, per_complexity = [], Counter()
    for run, ind in sorted(((run, ind) for run, state in enumerate(runs.states) for ind in state.population
                            if ind.evaluation.valid), key=lambda pair: rank_key(pair[1])):
        complexity = tree_complexity(ind, make.table)
        # scoring every tree on the search part cost a default GPT-2 search 40 % more time; the
        # fittest few of each complexity on the sample are where its best search-part tree lies
        if str(ind) not in seen and per_complexity[complexity] < PER_COMPLEXITY:
            seen.add(str(ind))
            per_complexity[complexity] += 1
            pool.append((run, ind, complexity))
    truth = None if part_of is not None else np.asarray(search_part.truth)

    def part(ind) -> dict:
        if part_of is not None:
            return part_of(ind)
        return correlation(ind.evaluation.orientation * search_part.scores(ind), truth)

    parts = [part(ind) for _, ind, _ in pool]
    front = pareto_front([c for _, _, c in pool], [p["spearman"] for p in parts])
    return [make(pool[i][0], pool[i][1], parts[i]) for i in front]


def load_front(path: Path | str) -> list[dict]:
    """The Pareto front of a search: its folder, its `pareto_front.json` or the `hall_of_fame.json`
    beside it; ResultError naming the file if it is missing or malformed."""
    path = Path(path)
    if path.is_dir() or path.name == HALL_OF_FAME_FILE:
        path = (path if path.is_dir() else path.parent) / FRONT_FILE
    try:
        front = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultError(f"{path}: file not found (a search of this lpzero writes it beside best.json)") from None
    except (OSError, ValueError) as e:
        raise ResultError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(front, list) or not all(isinstance(e, dict) and {"complexity", "search_part", "formula"} <= set(e)
                                              for e in front):
        raise ResultError(f"{path}: not a Pareto front (a list of entries with complexity, search_part, formula)")
    return front


def _rho(x: dict | None) -> str:
    return "n/a" if not x or x.get("spearman") is None else f"{x['spearman']:+.3f}"


def front_text(front: Sequence[dict]) -> str:
    """The front as plain text, one tree a line: complexity, search-part ρ, formula."""
    lines = [f"{'complexity':>10}  {'search-part ρ':>13}  formula"]
    lines += [f"{e['complexity']:>10}  {_rho(e['search_part']):>13}  {e['formula']}" for e in front]
    return "\n".join(lines)
