"""The evolution loop of the paper's Algorithm 1, with checkpoints.

Each iteration draws two parents with `toolbox.select` from the top `top_fraction`
of the population, applies `toolbox.mate` (probability `crossover`) and
`toolbox.mutate` (probability `mutation`), evaluates the first offspring with
`toolbox.evaluate` through `toolbox.map`, and keeps the best `population` distinct
proxies. The loop touches nothing but the toolbox, so a research script can
re-register any of these operators, or make a toolbox by hand: it needs `individual`,
`population(n)`, `evaluate`, `select`, `mate` and `mutate` (plus DEAP's own `clone` and
`map`); `rps_log` (RPS counts), `record` and `from_record` (the checkpoint's form of an
individual), `complexity` (the log's bloat columns; default: the node count) and
`selection_fitness` (parsimony: what `ind.fitness` holds instead of the raw |ρ|) are optional.

The variation step is written out rather than DEAP's `algorithms.varAnd`:
Algorithm 1 makes one child per iteration from two parents, and `varAnd` would
also mutate (and RPS-check) the second offspring that is then thrown away, and
draw different random numbers.

Two proxies are the same when they order the sampled architectures identically
(`distinct="ranking"`, the default; the ranking comes with each `Evaluation`):
their fitness is equal by construction, and copies of one proxy (``l1(G)``,
``sqrt(l1(G))``, ...) would otherwise fill the small parent pool. Of two such trees
the smaller is kept; `distinct="text"` counts only identical trees as the same.
`random_search=True` replaces the variation step by a fresh random proxy (the
paper's random-search baseline).

Per-iteration statistics are DEAP's `tools.Statistics` in a `tools.Logbook`: best and median raw
fitness, and the population's mean and largest tree size and complexity (bloat). The
loop state (population, iteration, `random` state, counters, logbook) is written
as a versioned JSON checkpoint (`lpzero.checkpoint`) every `checkpoint_every`
iterations; `resume=True` continues from it and reaches the same result as an
uninterrupted run.
"""
from __future__ import annotations

import csv
import random
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

from deap import base, tools

from lpzero.checkpoint import (CheckpointFormat, random_state, random_state_from_json, read_checkpoint,
                               require_same, write_checkpoint)
from lpzero.errors import LPZeroError, UnknownNameError
from lpzero.files import atomic_write

from .fitness import Evaluation
from .toolbox import from_record, to_record

#: settings a resumed run may change (all others must match the checkpoint's)
RESUMABLE_CHANGES = ("iterations", "checkpoint_every")
#: the same, as `differences` names them in a checkpoint's record
MAY_CHANGE = tuple(f"settings.{k}" for k in RESUMABLE_CHANGES)
#: bloat columns: the population's mean and largest tree size (nodes) and complexity (`toolbox.complexity`)
BLOAT_FIELDS = ("size_mean", "size_max", "complexity_mean", "complexity_max")
LOG_FIELDS = ("run", "iteration", "best", "median", *BLOAT_FIELDS, "invalid", "rps_rejected", "seconds")
CHECKPOINT = "checkpoint.json"
DISTINCT = ("ranking", "text")
#: the loop's checkpoint; files written before checkpoints had a version are version 1
EVOLVE_CHECKPOINT = CheckpointFormat("lpzero evolve", 1, ("settings", "context", "iteration", "population", "invalid",
                                                          "rps", "log", "seconds", "random_state"), unversioned=1)


@dataclass
class EvolveSettings:
    """Paper Algorithm 1 defaults (SPEC section 4); the CLI's defaults are these."""

    population: int = 80
    iterations: int = 1000
    crossover: float = 0.5
    mutation: float = 0.5
    top_fraction: float = 0.1
    seed: int = 42
    random_search: bool = False
    #: when two proxies count as the same: "ranking" (they order the sampled architectures
    #: identically, so the simpler tree is kept) or "text" (identical trees only)
    distinct: str = "ranking"
    checkpoint_every: int = 50

    def __post_init__(self) -> None:
        problems = []
        if self.population < 2:
            problems.append(f"population {self.population} (at least 2: two parents per iteration)")
        if self.iterations < 0:
            problems.append(f"iterations {self.iterations} (at least 0)")
        for name in ("crossover", "mutation"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} {getattr(self, name)} (a probability in [0, 1])")
        if not 0.0 < self.top_fraction <= 1.0:
            problems.append(f"top fraction {self.top_fraction} (in (0, 1])")
        if self.distinct not in DISTINCT:
            problems.append(f"distinct {self.distinct!r} (one of {', '.join(DISTINCT)})")
        if self.checkpoint_every < 1:
            problems.append(f"checkpoint_every {self.checkpoint_every} (at least 1)")
        if problems:
            raise LPZeroError("invalid evolution settings: " + "; ".join(problems))


@dataclass
class EvolutionState:
    population: list
    iteration: int = 0
    invalid: Counter = field(default_factory=Counter)
    logbook: tools.Logbook = field(default_factory=tools.Logbook)
    seconds: float = 0.0

    @property
    def log(self) -> list[dict]:
        """The logbook's records, one per iteration."""
        return list(self.logbook)


def statistics_of_fitness() -> tools.Statistics:
    """Best and median raw fitness (|ρ|, before any parsimony penalty) of a population (DEAP `Statistics`)."""
    stats = tools.Statistics(key=lambda ind: ind.evaluation.fitness)
    stats.register("best", max)
    stats.register("median", statistics.median)
    return stats


def statistics_of_bloat(toolbox: base.Toolbox) -> tools.MultiStatistics:
    """Mean and largest tree size (nodes) and complexity of a population (DEAP `MultiStatistics`);
    complexity is `toolbox.complexity`, or the size for a toolbox made by hand without one."""
    bloat = tools.MultiStatistics(size=tools.Statistics(key=len),
                                  complexity=tools.Statistics(key=getattr(toolbox, "complexity", len)))
    bloat.register("mean", lambda xs: round(statistics.fmean(xs), 3))
    bloat.register("max", max)
    return bloat


def _recorder(toolbox: base.Toolbox) -> Callable:
    """`toolbox.record`, or `to_record` for a toolbox made by hand without one."""
    return getattr(toolbox, "record", to_record)


def _reader(toolbox: base.Toolbox) -> Callable:
    """`toolbox.from_record`, or `from_record` on `toolbox.pset` for a toolbox made by hand without one."""
    if hasattr(toolbox, "from_record"):
        return toolbox.from_record
    if hasattr(toolbox, "pset"):
        return partial(from_record, pset=toolbox.pset)
    raise LPZeroError("resuming needs the toolbox's `from_record` (or its `pset`) to read the saved population; "
                      "register one, or start afresh")


def save_checkpoint(path: Path, toolbox: base.Toolbox, state: EvolutionState, settings: EvolveSettings,
                    context: dict | None = None) -> None:
    """Write the loop's state to `path` (atomically, with the current `random` state)."""
    record = _recorder(toolbox)
    rps = getattr(toolbox, "rps_log", None)
    write_checkpoint(path, EVOLVE_CHECKPOINT, {
        "settings": asdict(settings),
        "context": context or {},
        "iteration": state.iteration,
        "population": [record(ind) for ind in state.population],
        "invalid": dict(state.invalid),
        "rps": rps.to_dict() if rps is not None else None,
        "log": state.log,
        "seconds": state.seconds,
        "random_state": random_state(),
    })


def _record_now(settings: EvolveSettings, context: dict) -> dict:
    """What a checkpoint's `settings` and `context` are compared with (see `require_same`)."""
    return {"settings": asdict(settings), "context": context}


def check_checkpoint(path: Path, settings: EvolveSettings, context: dict, unknown: tuple[str, ...] = ()) -> None:
    """ResultError if the checkpoint at `path` was written with other settings or context; keys in
    `unknown` (not computed yet, e.g. a fingerprint of inputs still to be cached) are not compared.
    Lets a command refuse a resume before its expensive work."""
    saved = read_checkpoint(path, EVOLVE_CHECKPOINT)
    saved_context = saved.read("context", lambda c: {k: v for k, v in c.items() if k not in unknown and k in context})
    require_same(path, {"settings": saved["settings"], "context": saved_context}, _record_now(settings, context),
                 MAY_CHANGE)


def load_checkpoint(path: Path, toolbox: base.Toolbox, settings: EvolveSettings,
                    context: dict | None = None) -> EvolutionState:
    """The state saved in `path`, with `random`'s state and the RPS counts restored.

    ResultError if the file is damaged, or was written with other settings or another
    context (fitness sample, cache, split: whatever the caller says the run depends on).
    """
    saved = read_checkpoint(path, EVOLVE_CHECKPOINT)
    require_same(path, {"settings": saved["settings"], "context": saved["context"]},
                 _record_now(settings, context or {}), MAY_CHANGE)
    rstate = saved.read("random_state", random_state_from_json)
    read = _reader(toolbox)
    population = saved.read("population", lambda records: [read(r) for r in records])
    logbook = tools.Logbook()
    saved.read("log", logbook.extend)
    state = EvolutionState(population, saved.read("iteration", int), saved.read("invalid", Counter), logbook,
                           saved.read("seconds", float))
    rps = getattr(toolbox, "rps_log", None)
    if rps is not None and saved["rps"] is not None:  # a run without an RPS log saved none
        saved.read("rps", rps.restore)
    random.setstate(rstate)
    return state


def evaluate_all(toolbox: base.Toolbox, inds: list, invalid: Counter | None = None) -> None:
    """Fitness through `toolbox.map(toolbox.evaluate, ...)` (register a pool's map to run in parallel).

    Each individual keeps its `Evaluation` as `ind.evaluation`; invalid ones are counted
    by reason in `invalid`. `ind.fitness` is what selection sees: the evaluation's fitness, or
    `toolbox.selection_fitness(ind, evaluation)` where one is registered (`--parsimony COEF`).
    """
    selection_fitness = getattr(toolbox, "selection_fitness", None)
    for ind, result in zip(inds, toolbox.map(toolbox.evaluate, inds)):
        ev = Evaluation.of(result)
        ind.fitness.values = ev if selection_fitness is None else (selection_fitness(ind, ev),)
        ind.evaluation = ev
        if invalid is not None and not ev.valid:
            invalid[ev.reason.value] += 1


def identity_function(distinct: str) -> Callable:
    """What makes two evaluated proxies the same under `distinct` ("ranking" or "text"), as a key."""
    if distinct == "text":
        return str
    if distinct == "ranking":
        return lambda ind: getattr(ind, "evaluation", None) and ind.evaluation.ranking or str(ind)
    raise UnknownNameError("distinct", distinct, DISTINCT)


def rank_key(ind) -> tuple:
    """Best selection fitness first; among equally fit proxies the smaller tree first (parsimony)."""
    return -ind.fitness.values[0], len(ind), str(ind)


def raw_rank_key(ind) -> tuple:
    """As `rank_key` on the raw |ρ| (`ind.evaluation`, no parsimony penalty): how results are ranked.
    The same order as `rank_key` when no `selection_fitness` is registered."""
    return -ind.evaluation.fitness, len(ind), str(ind)


def _admit(population: list, members: dict, identity: Callable, child, size: int) -> None:
    """Put a child into the population unless the same proxy, as fit and no larger, is there.

    `members` maps each proxy identity to the population member that holds it.
    """
    key = identity(child)
    same = members.get(key)
    if same is not None:
        if rank_key(child) >= rank_key(same):
            return
        population[:] = [ind for ind in population if ind is not same]
    members[key] = child
    population.append(child)
    population.sort(key=rank_key)
    for dropped in population[size:]:
        k = identity(dropped)
        if members.get(k) is dropped:
            del members[k]
    del population[size:]


def _initial_state(toolbox: base.Toolbox, settings: EvolveSettings, identity: Callable) -> EvolutionState:
    random.seed(settings.seed)
    state = EvolutionState(population=[])
    drawn = toolbox.population(settings.population)
    evaluate_all(toolbox, drawn, state.invalid)
    members: dict = {}
    for _ in range(10):  # random trees that are the same proxy as another are redrawn
        for ind in drawn:
            _admit(state.population, members, identity, ind, settings.population)
        missing = settings.population - len(state.population)
        if not missing:
            break
        drawn = toolbox.population(missing)
        evaluate_all(toolbox, drawn, state.invalid)
    return state


def run_evolution(
    toolbox: base.Toolbox,
    settings: EvolveSettings,
    out_dir: Path | None = None,
    resume: bool = False,
    progress: Callable[[int, float], None] | None = None,
    context: dict | None = None,
) -> EvolutionState:
    """Run (or continue) Algorithm 1 with `toolbox`; returns the final state (population best first).

    `context` (JSON values) is what the run depends on besides `settings` (the fitness
    sample, the cache); it is saved in the checkpoint, and a resume with another refused.
    `toolbox` may be made by hand (see the module docstring): without `rps_log` the log's
    `rps_rejected` is 0, without `record`/`from_record` individuals are saved as their tree
    and fitness (`lpzero.search.toolbox.to_record`).
    """
    ckpt = out_dir / CHECKPOINT if out_dir is not None else None
    identity = identity_function(settings.distinct)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    if resume and ckpt is not None and ckpt.is_file():
        state = load_checkpoint(ckpt, toolbox, settings, context)
        evaluate_all(toolbox, state.population)  # each member's Evaluation (ranking); memoised, cheap
    else:
        state = _initial_state(toolbox, settings, identity)

    stats, bloat = statistics_of_fitness(), statistics_of_bloat(toolbox)
    rps = getattr(toolbox, "rps_log", None)  # a toolbox made by hand may have no RPS
    members = {identity(ind): ind for ind in reversed(state.population)}
    started = time.perf_counter() - state.seconds
    while state.iteration < settings.iterations:
        if settings.random_search:
            child = toolbox.individual()
        else:
            parents = toolbox.select(state.population, 2)
            child, other = (toolbox.clone(p) for p in parents)
            if random.random() < settings.crossover:
                child, other = toolbox.mate(child, other)
            if random.random() < settings.mutation:
                (child,) = toolbox.mutate(child)
        evaluate_all(toolbox, [child], state.invalid)
        if child.evaluation.valid:
            _admit(state.population, members, identity, child, settings.population)
        state.iteration += 1
        state.seconds = time.perf_counter() - started
        record = stats.compile(state.population)
        sizes = bloat.compile(state.population)
        state.logbook.record(iteration=state.iteration, best=record["best"], median=record["median"],
                             **{f"{k}_{stat}": v for k, stats_k in sizes.items() for stat, v in stats_k.items()},
                             invalid=sum(state.invalid.values()), rps_rejected=rps.rejected if rps is not None else 0,
                             seconds=round(state.seconds, 3))
        if progress is not None:
            progress(state.iteration, record["best"])
        if ckpt is not None and (state.iteration % settings.checkpoint_every == 0
                                 or state.iteration == settings.iterations):
            save_checkpoint(ckpt, toolbox, state, settings, context)
    return state


def write_log_csv(path: Path, logs: list[list[dict]]) -> None:
    """One CSV of the per-iteration logs of a search's runs (column `run`: the run's index)."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=LOG_FIELDS)
            w.writeheader()
            for run, log in enumerate(logs):
                w.writerows({"run": run, **row} for row in log)

    atomic_write(path, write)
