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
from lpzero.primitives import DEFAULT_TABLE, OpRegistry, op_table, op_table_path
from lpzero.search import (COMBINE, FitnessEvaluator, SearchSetup, correlation, evolve_on, evolve_on_several,
                           run_seed, search_sample, select_final)
from lpzero.search.complexity import select_model
from lpzero.search.loop import CHECKPOINT, check_checkpoint, raw_rank_key, write_log_csv
from lpzero.search.runs import SearchRuns, ops_context, setup_context

from .front import FRONT_FILE, HALL_OF_FAME_FILE, EntryMaker, pareto_entries
from .markdown import report_text
from .plots import PARETO_PLOT, plot_evolution, plot_pareto
from .results import BEST_FILE, BEST_VERSION, PRIMITIVE_SET_VERSION, best_baseline


log = logging.getLogger("lpzero")

#: what a search writes into its folder besides the runs' checkpoints (best.json last)
OUTPUTS = (HALL_OF_FAME_FILE, FRONT_FILE, "log.csv", "evolution.png", PARETO_PLOT, "report.md", BEST_FILE)


def default_out(*benches: Benchmark, under: str = "runs") -> Path:
    """`runs/<benchmark>` (several: `runs/<first>+<second>...`), with the characters of `lts:PATH`-style
    names made safe for a folder name."""
    return Path(under) / "+".join(folder_name(bench.name) for bench in benches)


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
    #: the other benchmarks of a search on several at once (`--benchmark a,b,c`: one formula, its fitness
    #: combining their |ρ| by `setup.combine`); each has `benchmark`'s options but its own cache and split
    more_benchmarks: tuple[BenchmarkRequest, ...] = ()
    #: the op table searched with (`lpzero.primitives.op_table`: "default", "extended", "module:ATTR", ...)
    ops: str = DEFAULT_TABLE

    @property
    def benchmarks(self) -> tuple[BenchmarkRequest, ...]:
        """Every benchmark of the search, `benchmark` first."""
        return (self.benchmark, *self.more_benchmarks)


@dataclass
class BenchmarkPart:
    """One benchmark of a search: its cache, architectures and split (`search_sample` of the search's seed)."""

    bench: Benchmark
    cache: InputCache
    ids: list[str]
    search_ids: list[str]
    held_ids: list[str]
    sample_ids: list[str]

    @property
    def name(self) -> str:
        return self.bench.name

    def gt(self, some: list[str]) -> np.ndarray:
        """Ground truth of the architectures `some`."""
        return np.array([self.bench.architecture(a).ground_truth for a in some])


def open_part(request: EvolveRequest, benchmark: BenchmarkRequest) -> BenchmarkPart:
    """One benchmark of `request`, opened and split, checked before any work."""
    bench = benchmark.open()
    store = request.cache.open(bench, benchmark.options(), benchmark.data)
    ids = benchmark.select_ids(bench)
    setup = request.setup
    search_ids, held_ids, sample_ids = search_sample(ids, setup)
    if len(sample_ids) < setup.sample:
        log.warning("--sample %d: the search part of %s has %d architectures; fitness is computed on all of them",
                    setup.sample, bench.name, len(search_ids))
    if not all(measured(bench.architecture(a)) for a in ids):
        raise LPZeroError(f"{bench.name}: some architectures have no ground truth; a search needs it for all "
                          "(select the measured ones with --ids)")
    return BenchmarkPart(bench, store, ids, search_ids, held_ids, sample_ids)


def same_benchmark(name: str) -> str:
    """`name` with a `file.py:Class` benchmark's file resolved: one benchmark however its path is spelled."""
    file, sep, cls = name.rpartition(":")
    return f"{Path(file).resolve()}:{cls}" if sep and file.endswith(".py") else name


def evolve(request: EvolveRequest, progress: Progress = no_progress) -> tuple[Path, dict]:
    """Run the search `request` describes; (output folder, the best.json record)."""
    table = op_table(request.ops)  # an unknown table fails before any work
    parts = [open_part(request, b) for b in request.benchmarks]  # every benchmark checked before any work
    if len({same_benchmark(p.name) for p in parts}) < len(parts):
        raise LPZeroError(f"--benchmark names a benchmark twice: {', '.join(p.name for p in parts)}")
    names = proxy_names(request.baselines)
    out = Path(request.out) if request.out else default_out(*(p.bench for p in parts))
    setup = request.setup
    with owned_folder(out):  # before any work: an unwritable or busy --out fails now
        if request.resume:  # before the cache is filled
            if len(parts) == 1:
                check_resume(parts[0].cache, parts[0].ids, setup, out, table)
            else:
                check_resume_several(parts, setup, out, table)
        remove_outputs(out, OUTPUTS)  # a run that stops early must not leave another run's best.json
        for part in parts:
            fill_cache(part.cache, part.ids, names, request.executor, request.cache.device, progress)
        runs, total = setup.runs, setup.runs * setup.evolve.iterations
        stage = f"evolving ({runs} runs)" if runs > 1 else "evolving"

        def report(done: int, fittest: float) -> None:
            progress(stage, done, total, f"best={fittest:.3f}")

        if len(parts) == 1:
            best = run_search(parts[0].bench, parts[0].cache, parts[0].ids, setup, out, resume=request.resume,
                              device=request.cache.device, progress=report, ops=table)
        else:
            best = run_several_search(parts, setup, out, resume=request.resume, device=request.cache.device,
                                      progress=report, ops=table)
    return out, best


def search_context(cache: InputCache, setup: SearchSetup, sample_ids: list[str]) -> dict:
    """What a search's checkpoints record of its data: benchmark, cache, split and fitness sample."""
    return {"benchmark": cache.settings.benchmark, "cache": cache.settings.key(), "holdout": setup.holdout,
            "sample": setup.sample, "sample_ids": sample_ids}


def check_resume(cache: InputCache, ids: list[str], setup: SearchSetup, out: Path,
                 ops: OpRegistry | str | None = None) -> None:
    """Refuse, before the cache is filled, a --resume whose checkpoints were written for another search
    (another op table included, where the new search names one)."""
    _, _, sample_ids = search_sample(ids, setup)
    _check_runs(out, setup, {**search_context(cache, setup, sample_ids), **setup_context(setup),
                             **ops_context(op_table(ops))})


def several_context(parts: list[BenchmarkPart], setup: SearchSetup) -> dict:
    """What the checkpoints of a search on several benchmarks record of their data (each one's `search_context`)."""
    return {"benchmarks": [search_context(p.cache, setup, p.sample_ids) for p in parts]}


def check_resume_several(parts: list[BenchmarkPart], setup: SearchSetup, out: Path,
                         ops: OpRegistry | str | None = None) -> None:
    """`check_resume` of a search on several benchmarks."""
    _check_runs(out, setup, {**several_context(parts, setup), **setup_context(setup), **ops_context(op_table(ops))})


def _check_runs(out: Path, setup: SearchSetup, context: dict) -> None:
    """Refuse the runs' checkpoints in `out` if written with other settings or another `context`."""
    for r in range(setup.runs):
        path = out / f"run_{r}" / CHECKPOINT
        if path.is_file():
            check_checkpoint(path, replace(setup.evolve, seed=run_seed(setup.evolve.seed, r)), context,
                             unknown=("fitness_data",))


def run_summaries(runs: SearchRuns) -> list[dict]:
    """Each run's seed, fittest tree and its raw fitness (|ρ| on the sample; None if invalid), seconds."""
    summaries = []
    for r, state in enumerate(runs.states):
        fittest = min(state.population, key=raw_rank_key)
        summaries.append({"run": r, "seed": runs.seeds[r], "best_tree": str(fittest),
                          "best_fitness": fittest.evaluation.fitness if fittest.evaluation.valid else None,
                          "seconds": state.seconds})
    return summaries


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
    finalists = _finalists(runs, setup)
    make = EntryMaker(pset, table, evaluator.inputs, len(sample_ids), held_inputs, all_inputs)
    hof, front, found = _choose(runs, setup, finalists, make, search_inputs=search_inputs)
    best = {
        **_header(cache.settings.benchmark, bench, setup, ops_path),
        **found,
        "select": setup.select,
        **_benchmark_record(cache, setup, search_ids, held_ids, sample_ids, gt(held_ids)),
        **_summary(runs, setup, finalists),
    }
    _write_outputs(out, runs, best, hof, front)
    return best


def run_several_search(parts: list[BenchmarkPart], setup: SearchSetup, out: Path, resume: bool = False,
                       progress: Callable[[int, float], None] | None = None,
                       customize: Callable[[base.Toolbox], None] | None = None, device: str = "cpu",
                       ops: OpRegistry | str | None = None) -> dict:
    """`run_search` on several benchmarks at once (each already cached): one formula whose fitness is
    `setup.combine` of its |ρ| on each benchmark's own fitness sample (`lpzero.search.evolve_on_several`).

    Each benchmark keeps its own split and orientation. The final selection, the front and
    `--select` use the combined search-part ρ (each benchmark's ρ oriented as on its sample).
    best.json's top level is what `lpzero rank`/`export` read, the first benchmark's view (its
    orientation, split, cache, held-out figures); `"benchmarks"` lists every benchmark's figures,
    split, cache and best hand-designed proxy, and `"combine"` the combination.
    """
    table = op_table(ops)
    ops_path = op_table_path(table)
    out.mkdir(parents=True, exist_ok=True)
    data = {p.name: (p.cache.load(p.sample_ids, device), p.gt(p.sample_ids)) for p in parts}
    runs = evolve_on_several(data, setup, out, resume, progress, customize, ops=table,
                             context=several_context(parts, setup))
    pset, first = runs.pset, parts[0]

    def scorer(some: list[str], part: BenchmarkPart) -> FitnessEvaluator:
        return FitnessEvaluator(pset, part.cache.load(some, device), part.gt(some))

    scorers = {p.name: {"search_part": scorer(p.search_ids, p), "heldout": scorer(p.held_ids, p),
                        "whole": scorer(p.ids, p)} for p in parts}
    combine = COMBINE[setup.combine]

    def figures(ind) -> list[dict]:
        """Each benchmark's figures of `ind`, oriented as on that benchmark's sample."""
        listed = []
        for p in parts:
            ev = ind.evaluation.parts[p.name]
            sign = ev.orientation
            listed.append({"benchmark": p.name, "orientation": sign,
                           "search": {"spearman": sign * ev.spearman, "fitness": ev.fitness, "n": len(p.sample_ids)},
                           **{key: correlation(sign * e.scores(ind), np.asarray(e.truth))
                              for key, e in scorers[p.name].items()}})
        return listed

    def part_of(ind) -> dict:
        """The combined search-part record: `setup.combine` of the benchmarks' search-part ρ."""
        listed = figures(ind)
        rho = [f["search_part"]["spearman"] for f in listed]
        reasons = [f"{f['benchmark']}: {f['search_part']['invalid_reason']}" for f in listed
                   if f["search_part"]["spearman"] is None]
        return {"spearman": None if reasons else float(combine(rho)), "kendall": None,
                "n": sum(f["search_part"]["n"] for f in listed), "invalid_reason": "; ".join(reasons) or None,
                "combine": setup.combine}

    make = SeveralEntryMaker(pset, table, runs.evaluator.evaluators[first.name].inputs, len(first.sample_ids),
                             scorers[first.name]["heldout"], scorers[first.name]["whole"], figures)
    finalists = _finalists(runs, setup)
    hof, front, found = _choose(runs, setup, finalists, make, part_of=part_of)
    per_benchmark = found.pop("benchmarks")
    best = {
        **_header(first.cache.settings.benchmark, first.bench, setup, ops_path),
        **found,
        "select": setup.select,
        "combine": setup.combine,
        **_benchmark_record(first.cache, setup, first.search_ids, first.held_ids, first.sample_ids,
                            first.gt(first.held_ids)),
        "benchmarks": [{**fig, "ground_truth": f"{p.bench.raw_metric}, oriented higher = better",
                        **_benchmark_record(p.cache, setup, p.search_ids, p.held_ids, p.sample_ids, p.gt(p.held_ids))}
                       for p, fig in zip(parts, per_benchmark)],
        **_summary(runs, setup, finalists),
    }
    _write_outputs(out, runs, best, hof, front)
    return best


@dataclass
class SeveralEntryMaker(EntryMaker):
    """`EntryMaker` of a search on several benchmarks: the first benchmark's record, with every benchmark's
    figures as `"benchmarks"` (`figures(tree)`)."""

    figures: Callable[[object], list[dict]] | None = None

    def _entry(self, run: int, ind, part: dict) -> dict:
        return {**super()._entry(run, ind, part), "benchmarks": self.figures(ind)}


def _finalists(runs: SearchRuns, setup: SearchSetup) -> list[tuple[int, object]]:
    """The runs' finalists (`SearchRuns.finalists`); LPZeroError if no run found a valid proxy."""
    finalists = runs.finalists(setup.hall_of_fame, setup.evolve.distinct)
    if not finalists:
        raise LPZeroError(f"no valid proxy in {setup.runs} run(s) of {setup.evolve.iterations} iterations (invalid "
                          f"by reason: {dict(_invalid(runs))}); try more iterations or a larger --sample")
    return finalists


def _invalid(runs: SearchRuns) -> Counter:
    return sum((s.invalid for s in runs.states), Counter())


def _choose(runs: SearchRuns, setup: SearchSetup, finalists: list, make: Callable[[int, object, dict], dict],
            search_inputs: FitnessEvaluator | None = None,
            part_of: Callable[[object], dict] | None = None) -> tuple[list[dict], list[dict], dict]:
    """(hall of fame, Pareto front, the found proxy's entry): the final selection on search-part ρ (of
    `search_inputs`, or `part_of(tree)`'s record) and `--select` on the front."""
    if part_of is None:
        truth = np.asarray(search_inputs.truth)
        part = [correlation(ind.evaluation.orientation * search_inputs.scores(ind), truth) for _, ind in finalists]
    else:
        part = [part_of(ind) for _, ind in finalists]
    hof = [make(*finalists[i], part[i])
           for i in select_final([m["spearman"] for m in part], setup.final_selection)[: setup.hall_of_fame]]
    front = pareto_entries(runs, search_inputs, make, part_of=part_of)
    # the found proxy: by default the final selection's first tree, as always; otherwise a front tree
    chosen = select_model(setup.select, [e["complexity"] for e in front],
                          [e["search_part"]["spearman"] for e in front])
    return hof, front, dict(hof[0] if chosen is None else front[chosen])


def _header(benchmark: str, bench: Benchmark, setup: SearchSetup, ops_path: str | None) -> dict:
    """The first keys of best.json: its version, benchmark, ground truth, toolbox and op table."""
    return {
        "lpzero_best_version": BEST_VERSION,
        "benchmark": benchmark,
        "ground_truth": f"{bench.raw_metric}, oriented higher = better",
        "toolbox": setup.toolbox,
        "primitive_set_version": PRIMITIVE_SET_VERSION,
        **({"ops": ops_path} if ops_path is not None else {}),  # absent: the built-in table
    }


def _benchmark_record(cache: InputCache, setup: SearchSetup, search_ids: list[str], held_ids: list[str],
                      sample_ids: list[str], held_truth: np.ndarray) -> dict:
    """A benchmark's best hand-designed proxy held out, its split and its cache settings (best.json)."""
    return {
        "baseline_heldout": best_baseline(cache, held_ids, held_truth),
        "split": {"seed": setup.evolve.seed, "search": len(search_ids), "heldout": len(held_ids),
                  "sample": len(sample_ids), "search_ids": search_ids, "heldout_ids": held_ids,
                  "sample_ids": sample_ids},
        "cache": {**asdict(cache.settings), "key": cache.settings.key()},
    }


def _summary(runs: SearchRuns, setup: SearchSetup, finalists: list) -> dict:
    """The last keys of best.json: settings, each run's summary, candidates, RPS and invalid counts, time."""
    rps = [tb.rps_log.to_dict() for tb in runs.toolboxes]
    return {
        "setup": asdict(setup),
        "runs": run_summaries(runs),
        "candidates": len(finalists),
        "rps": {"rejected": sum(c["rejected"] for c in rps), "gave_up": sum(c["gave_up"] for c in rps),
                "reasons": dict(sum((Counter(c["reasons"]) for c in rps), Counter()))},
        "invalid": dict(_invalid(runs)),
        "seconds": sum(s.seconds for s in runs.states),
    }


def _write_outputs(out: Path, runs: SearchRuns, best: dict, hof: list[dict], front: list[dict]) -> None:
    """Every output file of a search into `out`, best.json last."""
    write_log_csv(out / "log.csv", [s.log for s in runs.states])
    plot_evolution([s.log for s in runs.states], out / "evolution.png")
    atomic_write_json(out / HALL_OF_FAME_FILE, hof)
    atomic_write_json(out / FRONT_FILE, front)
    plot_pareto(front, best["tree"], out / PARETO_PLOT)
    atomic_write_text(out / "report.md", report_text(best, hof, front))
    atomic_write_json(out / BEST_FILE, best)  # last: a best.json means every other output is there
