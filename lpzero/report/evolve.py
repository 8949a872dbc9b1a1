"""`lpzero evolve` end to end: open the benchmark, fill its cache, search, write every output.

`EvolveRequest` is the command's one settings object; `evolve(request)` checks it
all before any work (benchmark, ids, batch, baselines, --out, a --resume's
checkpoints), fills the cache, and runs `run_search`: split, runs, final selection,
held-out figures, and every output file in the output folder: `best.json` (the found
proxy, see `lpzero.proxies.found_proxy`), `hall_of_fame.json`, `pareto_front.json`
(complexity vs search-part ρ, `lpzero.report.front`), `log.csv`, `evolution.png`,
`pareto_formulas.png`, `report.md`, and each run's `run_<r>/checkpoint.json` (for `--resume`).
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
from deap import base

from lpzero.benchmarks import Benchmark, folder_name
from lpzero.benchmarks.selection import BenchmarkRequest, measured
from lpzero.cache import InputCache
from lpzero.cache.request import CacheRequest, Progress, fill_cache, no_progress, proxy_names
from lpzero.errors import LPZeroError
from lpzero.executors import ExecutorSettings
from lpzero.files import atomic_write_json, atomic_write_text, owned_folder, remove_outputs
from lpzero.primitives import OpRegistry, op_table, op_table_path
from lpzero.search import (FitnessEvaluator, SearchSetup, correlation, evolve_on, run_seed, search_sample,
                           select_final)
from lpzero.search.complexity import select_model
from lpzero.search.loop import CHECKPOINT, check_checkpoint, write_log_csv
from lpzero.search.runs import setup_context

from .front import FRONT_FILE, HALL_OF_FAME_FILE, EntryMaker, pareto_entries
from .markdown import report_text
from .plots import PARETO_PLOT, plot_evolution, plot_pareto
from .results import BEST_FILE, BEST_VERSION, PRIMITIVE_SET_VERSION, best_baseline


log = logging.getLogger("lpzero")

#: what a search writes into its folder besides the runs' checkpoints (best.json last)
OUTPUTS = (HALL_OF_FAME_FILE, FRONT_FILE, "log.csv", "evolution.png", PARETO_PLOT, "report.md", BEST_FILE)


def default_out(bench: Benchmark, under: str = "runs") -> Path:
    """`runs/<benchmark>`, with the characters of `lts:PATH`-style names made safe for a folder name."""
    return Path(under) / folder_name(bench.name)


@dataclass(frozen=True)
class EvolveRequest:
    """Everything `lpzero evolve` is told: the benchmark, its cache, the search, where outputs go."""

    benchmark: BenchmarkRequest
    cache: CacheRequest = field(default_factory=CacheRequest)
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    setup: SearchSetup = field(default_factory=SearchSetup)
    #: hand-designed proxies cached and compared against (all, none, or names)
    baselines: str = "all"
    #: output folder (None: runs/<benchmark>)
    out: str | None = None
    #: continue from the run checkpoints in `out`
    resume: bool = False


def evolve(request: EvolveRequest, progress: Progress = no_progress) -> tuple[Path, dict]:
    """Run the search `request` describes; (output folder, the best.json record)."""
    bench = request.benchmark.open()
    store = request.cache.open(bench, request.benchmark.options(), request.benchmark.data)
    ids = request.benchmark.select_ids(bench)
    names = proxy_names(request.baselines)
    out = Path(request.out) if request.out else default_out(bench)
    setup = request.setup
    search_ids, _, sample_ids = search_sample(ids, setup)
    if len(sample_ids) < setup.sample:
        log.warning("--sample %d: the search part has %d architectures; fitness is computed on all of them",
                    setup.sample, len(search_ids))
    if not all(measured(bench.architecture(a)) for a in ids):
        raise LPZeroError(f"{bench.name}: some architectures have no ground truth; a search needs it for all "
                          "(select the measured ones with --ids)")
    with owned_folder(out):  # before any work: an unwritable or busy --out fails now
        if request.resume:
            check_resume(store, ids, setup, out)  # before the cache is filled
        remove_outputs(out, OUTPUTS)  # a run that stops early must not leave another run's best.json
        fill_cache(store, ids, names, request.executor, request.cache.device, progress)
        runs, total = setup.runs, setup.runs * setup.evolve.iterations
        stage = f"evolving ({runs} runs)" if runs > 1 else "evolving"
        best = run_search(bench, store, ids, setup, out, resume=request.resume, device=request.cache.device,
                          progress=lambda done, fittest: progress(stage, done, total, f"best={fittest:.3f}"))
    return out, best


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
               customize: Callable[[base.Toolbox], None] | None = None, device: str = "cpu",
               ops: OpRegistry | str | None = None) -> dict:
    """Run the search on `ids` (already cached) and write all outputs into `out` (`customize`: see
    `lpzero.search.evolve_on`); returns the `best.json` record. Fitness runs on `device`.

    `ops`: the op table (default: the built-in one), recorded in best.json as `"ops"`
    (`lpzero.primitives.op_table_path`: absent for the built-in table) so a new process reads
    the found tree with it; a table with no importable path is refused before the search.
    """
    table = op_table(ops)
    ops_path = op_table_path(table)  # before the search: a best.json no one could read is not worth hours
    seed = setup.evolve.seed
    search_ids, held_ids, sample_ids = search_sample(ids, setup)
    truth = {a: bench.architecture(a).ground_truth for a in ids}

    def gt(some: list[str]) -> np.ndarray:
        return np.array([truth[a] for a in some])

    out.mkdir(parents=True, exist_ok=True)
    context = search_context(cache, setup, sample_ids)
    runs = evolve_on(cache.load(sample_ids, device), gt(sample_ids), setup, out, resume, progress, customize,
                     ops=table, context=context)
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
    make = EntryMaker(pset, table, evaluator.inputs, len(sample_ids), held_inputs, all_inputs)
    hof = [make(*finalists[i], part[i])
           for i in select_final([m["spearman"] for m in part], setup.final_selection)[: setup.hall_of_fame]]
    front = pareto_entries(runs, search_inputs, make)
    # the found proxy: by default the final selection's first tree, as always; otherwise a front tree
    chosen = select_model(setup.select, [e["complexity"] for e in front],
                          [e["search_part"]["spearman"] for e in front])
    rps = [tb.rps_log.to_dict() for tb in runs.toolboxes]
    best = {
        "lpzero_best_version": BEST_VERSION,
        "benchmark": cache.settings.benchmark,
        "ground_truth": f"{bench.raw_metric}, oriented higher = better",
        "toolbox": setup.toolbox,
        "primitive_set_version": PRIMITIVE_SET_VERSION,
        **({"ops": ops_path} if ops_path is not None else {}),  # absent: the built-in table
        **(hof[0] if chosen is None else front[chosen]),
        "select": setup.select,
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
    atomic_write_json(out / HALL_OF_FAME_FILE, hof)
    atomic_write_json(out / FRONT_FILE, front)
    plot_pareto(front, best["tree"], out / PARETO_PLOT)
    atomic_write_text(out / "report.md", report_text(best, hof, front))
    atomic_write_json(out / BEST_FILE, best)  # last: a best.json means every other output is there
    return best
