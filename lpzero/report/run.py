"""A search end to end: split, runs, final selection, held-out figures, and every output file.

`run_search` is what `lpzero evolve` runs once the cache holds the architectures.
It writes into `out`: `best.json` (the found proxy, see `lpzero.report.results`),
`hall_of_fame.json`, `log.csv`, `evolution.png`, `report.md`, and each run's
`run_<r>/checkpoint.json` (for `--resume`).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import numpy as np
from deap import base

from lpzero.benchmarks import Benchmark
from lpzero.cache import InputCache
from lpzero.errors import LPZeroError
from lpzero.files import atomic_write_json, atomic_write_text
from lpzero.search import (FitnessEvaluator, SearchSetup, correlation, evolve_on, run_seed, search_sample,
                           select_final)
from lpzero.search.loop import CHECKPOINT, check_checkpoint, write_log_csv
from lpzero.search.runs import setup_context

from .export import proxy_formula
from .markdown import report_text
from .plots import plot_evolution
from .protection import active_nodes, guard_activity
from .results import BEST_FILE, BEST_VERSION, PRIMITIVE_SET_VERSION, best_baseline


def search_context(cache: InputCache, setup: SearchSetup, sample_ids: list[str]) -> dict:
    """What a search's checkpoints record of its data: benchmark, cache, split and fitness sample."""
    return {"benchmark": cache.settings.benchmark, "cache": cache.settings.key(), "holdout": setup.holdout,
            "sample": setup.sample, "sample_ids": sample_ids}


def check_resume(cache: InputCache, ids: list[str], setup: SearchSetup, out: Path) -> None:
    """Refuse, before the cache is filled, a --resume whose checkpoints were written for another search."""
    _, _, sample_ids = search_sample(ids, setup)
    context = {**search_context(cache, setup, sample_ids), **setup_context(setup)}
    for r in range(setup.runs):
        path = out / f"run_{r}" / CHECKPOINT
        if path.is_file():
            check_checkpoint(path, replace(setup.evolve, seed=run_seed(setup.evolve.seed, r)), context,
                             unknown=("fitness_data",))


def run_search(bench: Benchmark, cache: InputCache, ids: list[str], setup: SearchSetup, out: Path,
               resume: bool = False, progress: Callable[[int, float], None] | None = None,
               customize: Callable[[base.Toolbox], None] | None = None, device: str = "cpu") -> dict:
    """Run the search on `ids` (already cached) and write all outputs into `out` (`customize`: see
    `lpzero.search.evolve_on`); returns the `best.json` record. Fitness runs on `device`."""
    seed = setup.evolve.seed
    search_ids, held_ids, sample_ids = search_sample(ids, setup)
    truth = {a: bench.architecture(a).ground_truth for a in ids}

    def gt(some: list[str]) -> np.ndarray:
        return np.array([truth[a] for a in some])

    out.mkdir(parents=True, exist_ok=True)
    context = search_context(cache, setup, sample_ids)
    runs = evolve_on(cache.load(sample_ids, device), gt(sample_ids), setup, out, resume, progress, customize,
                     context=context)
    evaluator, pset = runs.evaluator, runs.pset

    held_inputs = FitnessEvaluator(pset, cache.load(held_ids, device), gt(held_ids))
    search_inputs = FitnessEvaluator(pset, cache.load(search_ids, device), gt(search_ids))
    all_inputs = FitnessEvaluator(pset, cache.load(ids, device), gt(ids))
    finalists = runs.finalists(setup.hall_of_fame, setup.evolve.distinct)
    invalid = sum((s.invalid for s in runs.states), Counter())
    if not finalists:
        raise LPZeroError(f"no valid proxy in {setup.runs} run(s) of {setup.evolve.iterations} iterations (invalid "
                          f"by reason: {dict(invalid)}); try more iterations or a larger --sample")
    part = [correlation(ind.evaluation.orientation * search_inputs.scores(ind), gt(search_ids))
            for _, ind in finalists]
    hof = []
    for i in select_final([m["spearman"] for m in part], setup.final_selection)[: setup.hall_of_fame]:
        run, ind = finalists[i]
        found = ind.evaluation
        sign = found.orientation  # every figure below is of the oriented proxy, as its formula shows
        protection = [g.to_dict() for g in guard_activity(ind, pset, evaluator.inputs)]
        guarded = active_nodes(protection)
        hof.append({
            "tree": str(ind),
            "genes": ind.genes.to_dict() if hasattr(ind, "genes") else None,
            "orientation": sign,
            "run": run,
            "search": {"spearman": sign * found.spearman, "fitness": found.fitness, "n": len(sample_ids)},
            "search_part": part[i],
            "heldout": correlation(sign * held_inputs.scores(ind), gt(held_ids)),
            "whole": correlation(sign * all_inputs.scores(ind), gt(ids)),
            "formula": proxy_formula(ind, sign, "text", guarded=guarded),
            "latex": proxy_formula(ind, sign, "latex", guarded=guarded),
            "protection": protection,
        })
    rps = [tb.rps_log.to_dict() for tb in runs.toolboxes]
    best = {
        "lpzero_best_version": BEST_VERSION,
        "benchmark": cache.settings.benchmark,
        "ground_truth": f"{bench.raw_metric}, oriented higher = better",
        "toolbox": setup.toolbox,
        "primitive_set_version": PRIMITIVE_SET_VERSION,
        **hof[0],
        "baseline_heldout": best_baseline(cache, held_ids, gt(held_ids)),
        "split": {"seed": seed, "search": len(search_ids), "heldout": len(held_ids), "sample": len(sample_ids),
                  "search_ids": search_ids, "heldout_ids": held_ids, "sample_ids": sample_ids},
        "cache": {**asdict(cache.settings), "key": cache.settings.key()},
        "setup": asdict(setup),
        "runs": [{"run": r, "seed": runs.seeds[r], "best_tree": str(state.population[0]),
                  "best_fitness": state.population[0].fitness.values[0]
                  if state.population[0].evaluation.valid else None,
                  "seconds": state.seconds}
                 for r, state in enumerate(runs.states)],
        "candidates": len(finalists),
        "rps": {"rejected": sum(c["rejected"] for c in rps), "gave_up": sum(c["gave_up"] for c in rps),
                "reasons": dict(sum((Counter(c["reasons"]) for c in rps), Counter()))},
        "invalid": dict(invalid),
        "seconds": sum(s.seconds for s in runs.states),
    }
    write_log_csv(out / "log.csv", [s.log for s in runs.states])
    plot_evolution([s.log for s in runs.states], out / "evolution.png")
    atomic_write_json(out / "hall_of_fame.json", hof)
    atomic_write_text(out / "report.md", report_text(best, hof))
    atomic_write_json(out / BEST_FILE, best)  # last: a best.json means every other output is there
    return best
