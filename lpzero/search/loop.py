"""The evolution loop of the paper's Algorithm 1, with checkpoints.

Each iteration draws two parents with `toolbox.select` from the top `top_fraction`
of the population, applies `toolbox.mate` (probability `crossover`) and
`toolbox.mutate` (probability `mutation`), evaluates the first offspring with
`toolbox.evaluate` through `toolbox.map`, and keeps the best `population` distinct
proxies. The loop touches nothing of the toolbox but these operators, so a research script
can re-register any of them, or make a toolbox by hand: it needs `individual`,
`population(n)`, `evaluate`, `select`, `mate` and `mutate` (plus DEAP's own `clone` and
`map`); `selection_fitness` (parsimony: what `ind.fitness` holds instead of the raw |ρ|) is
optional. As DEAP's algorithms take them, what the loop records is passed in: `stats`
(a `LoopStatistics`: the log's columns), `halloffame` (any DEAP hall of fame, updated every
iteration) and `checkpoint` (a `LoopCheckpoint`: where the state is saved, what the run
depends on, how individuals are written and read back, the RPS counts to keep).

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
iterations; a `LoopCheckpoint` with `resume=True` continues from it and reaches the same
result as an uninterrupted run.
"""
from __future__ import annotations

import csv
import random
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from deap import base, tools

from lpzero.checkpoint import (CheckpointFormat, random_state, random_state_from_json, read_checkpoint,
                               require_same, write_checkpoint)
from lpzero.errors import LPZeroError, UnknownNameError
from lpzero.files import atomic_write
from lpzero.settings import bounded, check_ranges

from .fitness import Evaluation
from .rps import RPSLog
from .toolbox import to_record

#: settings a resumed run may change (all others must match the checkpoint's)
RESUMABLE_CHANGES = ("iterations", "checkpoint_every")
#: the same, as `differences` names them in a checkpoint's record
MAY_CHANGE = tuple(f"settings.{k}" for k in RESUMABLE_CHANGES)
#: bloat columns: the population's mean and largest tree size (nodes) and complexity
BLOAT_FIELDS = ("size_mean", "size_max", "complexity_mean", "complexity_max")
LOG_FIELDS = ("run", "iteration", "best", "median", *BLOAT_FIELDS, "invalid", "rps_rejected", "seconds")
CHECKPOINT = "checkpoint.json"
DISTINCT = ("ranking", "text")
#: rounds of drawing the initial population: random trees that are the same proxy as another are redrawn
INITIAL_DRAWS = 10
#: the loop's checkpoint; files written before checkpoints had a version are version 1
EVOLVE_CHECKPOINT = CheckpointFormat("lpzero evolve", 1, ("settings", "context", "iteration", "population", "invalid",
                                                          "rps", "log", "seconds", "random_state"), unversioned=1)


@dataclass
class EvolveSettings:
    """Paper Algorithm 1 defaults (docs/concepts.md, "The held-out protocol"); the CLI's defaults and ranges are these."""

    population: int = bounded(80, min=2)  # two parents per iteration
    iterations: int = bounded(1000, min=0)
    crossover: float = bounded(0.5, min=0, max=1)
    mutation: float = bounded(0.5, min=0, max=1)
    top_fraction: float = bounded(0.1, min=0, max=1, min_open=True)
    seed: int = 42
    random_search: bool = False
    #: when two proxies count as the same: "ranking" (they order the sampled architectures
    #: identically, so the simpler tree is kept) or "text" (identical trees only)
    distinct: str = "ranking"
    checkpoint_every: int = bounded(50, min=1)

    def __post_init__(self) -> None:
        if self.distinct not in DISTINCT:
            raise LPZeroError(f"invalid evolution settings: distinct {self.distinct!r} (one of {', '.join(DISTINCT)})")
        check_ranges(self, "evolution")


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


class LoopStatistics:
    """What each iteration's log row records of the population (DEAP `Statistics`): best and median raw
    fitness (|ρ|, before any parsimony penalty), mean and largest tree size (nodes) and `complexity`,
    and the RPS rejections so far (`rps_log`; 0 without one)."""

    def __init__(self, complexity: Callable = len, rps_log: RPSLog | None = None) -> None:
        self.fitness = tools.Statistics(key=lambda ind: ind.evaluation.fitness)
        self.fitness.register("best", max)
        self.fitness.register("median", statistics.median)
        self.bloat = tools.MultiStatistics(size=tools.Statistics(key=len),
                                           complexity=tools.Statistics(key=complexity))
        self.bloat.register("mean", lambda xs: round(statistics.fmean(xs), 3))
        self.bloat.register("max", max)
        self.rps_log = rps_log

    def compile(self, population: list) -> dict:
        """The population's columns of one log row."""
        sizes = self.bloat.compile(population)
        return {**self.fitness.compile(population),
                **{f"{k}_{stat}": v for k, stats_k in sizes.items() for stat, v in stats_k.items()},
                "rps_rejected": self.rps_log.rejected if self.rps_log is not None else 0}

    @classmethod
    def of_toolbox(cls, toolbox: base.Toolbox) -> "LoopStatistics":
        """The statistics of a toolbox of `build_toolbox`: its `complexity` and its `rps_log`."""
        return cls(toolbox.complexity, toolbox.rps_log)


@dataclass
class LoopCheckpoint:
    """Where a run of the loop saves its state (`folder/checkpoint.json`) and how.

    `context` (JSON values) is what the run depends on besides its settings (the fitness sample,
    the cache); a resume with another is refused. `record` / `from_record` write an individual as
    JSON and read it back (`from_record` is needed to resume); `rps_log`, if given, is saved and
    restored with the state. `resume`: continue from the checkpoint in `folder` if there is one.
    """

    folder: Path
    context: dict = field(default_factory=dict)
    resume: bool = False
    record: Callable = to_record
    from_record: Callable | None = None
    rps_log: RPSLog | None = None

    @property
    def path(self) -> Path:
        return Path(self.folder) / CHECKPOINT

    @classmethod
    def of_toolbox(cls, toolbox: base.Toolbox, folder: Path, context: dict | None = None,
                   resume: bool = False) -> "LoopCheckpoint":
        """The checkpoint of a toolbox of `build_toolbox`: its `record`, `from_record` and `rps_log`."""
        return cls(Path(folder), dict(context or {}), resume, toolbox.record, toolbox.from_record, toolbox.rps_log)

    def save(self, state: EvolutionState, settings: EvolveSettings) -> None:
        """Write the loop's state (atomically, with the current `random` state)."""
        write_checkpoint(self.path, EVOLVE_CHECKPOINT, {
            "settings": asdict(settings),
            "context": self.context,
            "iteration": state.iteration,
            "population": [self.record(ind) for ind in state.population],
            "invalid": dict(state.invalid),
            "rps": self.rps_log.to_dict() if self.rps_log is not None else None,
            "log": state.log,
            "seconds": state.seconds,
            "random_state": random_state(),
        })

    def load(self, settings: EvolveSettings) -> EvolutionState:
        """The saved state, with `random`'s state and the RPS counts restored; ResultError if the file is
        damaged, or was written with other settings or another context."""
        if self.from_record is None:
            raise LPZeroError("resuming needs a `from_record` to read the saved population back (e.g. "
                              "functools.partial(lpzero.search.toolbox.from_record, pset=PSET)); or start afresh")
        saved = read_checkpoint(self.path, EVOLVE_CHECKPOINT)
        require_same(self.path, {"settings": saved["settings"], "context": saved["context"]},
                     _record_now(settings, self.context), MAY_CHANGE)
        rstate = saved.read("random_state", random_state_from_json)
        population = saved.read("population", lambda records: [self.from_record(r) for r in records])
        logbook = tools.Logbook()
        saved.read("log", logbook.extend)
        state = EvolutionState(population, saved.read("iteration", int), saved.read("invalid", Counter), logbook,
                               saved.read("seconds", float))
        if self.rps_log is not None and saved["rps"] is not None:  # a run without an RPS log saved none
            saved.read("rps", self.rps_log.restore)
        random.setstate(rstate)
        return state


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


def take_evaluation(toolbox: base.Toolbox, ind, result: Evaluation | tuple, invalid: Counter | None = None) -> None:
    """Give `ind` what `toolbox.evaluate` returned: `ind.evaluation` (an `Evaluation`) and `ind.fitness`, what
    selection sees (the evaluation's fitness, or `toolbox.selection_fitness(ind, evaluation)` where one is
    registered: `--parsimony COEF`); an invalid proxy is counted by reason in `invalid`."""
    ev = Evaluation.of(result)
    selection_fitness = getattr(toolbox, "selection_fitness", None)
    ind.fitness.values = ev if selection_fitness is None else (selection_fitness(ind, ev),)
    ind.evaluation = ev
    if invalid is not None and not ev.valid:
        invalid[ev.reason.value] += 1


def evaluate_all(toolbox: base.Toolbox, inds: list, invalid: Counter | None = None) -> None:
    """Fitness through `toolbox.map(toolbox.evaluate, ...)` (register a pool's map to run in parallel);
    each result given to its individual by `take_evaluation`."""
    for ind, result in zip(inds, toolbox.map(toolbox.evaluate, inds)):
        take_evaluation(toolbox, ind, result, invalid)


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


def run_evolution(
    toolbox: base.Toolbox,
    settings: EvolveSettings,
    checkpoint: LoopCheckpoint | None = None,
    stats: LoopStatistics | None = None,
    halloffame: tools.HallOfFame | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> EvolutionState:
    """Run (or, with `checkpoint.resume`, continue) Algorithm 1 with `toolbox`; the final state
    (population best first). See the module docstring for what `toolbox` needs and what the
    optional `checkpoint`, `stats` (default: `LoopStatistics()`, node counts as complexity) and
    `halloffame` do; `progress(iteration, best)` is called after each iteration.
    """
    identity = identity_function(settings.distinct)
    stats = stats or LoopStatistics()
    if checkpoint is not None:
        Path(checkpoint.folder).mkdir(parents=True, exist_ok=True)
    if checkpoint is not None and checkpoint.resume and checkpoint.path.is_file():
        state = checkpoint.load(settings)
        evaluate_all(toolbox, state.population)  # each member's Evaluation (ranking); memoised, cheap
    else:
        random.seed(settings.seed)
        state = EvolutionState(population=[])
        members: dict = {}
        drawn = toolbox.population(settings.population)
        # each draw is scored as it comes; after INITIAL_DRAWS admissions a last redraw is scored and
        # not admitted (checkpoints and logs of earlier runs count it)
        for draws in range(INITIAL_DRAWS + 1):
            for ind, result in zip(drawn, toolbox.map(toolbox.evaluate, drawn)):
                take_evaluation(toolbox, ind, result, state.invalid)
            if draws == INITIAL_DRAWS:
                break
            for ind in drawn:
                _admit(state.population, members, identity, ind, settings.population)
            missing = settings.population - len(state.population)
            if not missing:
                break
            drawn = toolbox.population(missing)

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
        for result in toolbox.map(toolbox.evaluate, [child]):
            take_evaluation(toolbox, child, result, state.invalid)
        if child.evaluation.valid:
            _admit(state.population, members, identity, child, settings.population)
        state.iteration += 1
        state.seconds = time.perf_counter() - started
        if halloffame is not None:
            halloffame.update(state.population)
        record = stats.compile(state.population)
        state.logbook.record(iteration=state.iteration, best=record["best"], median=record["median"],
                             **{k: record[k] for k in BLOAT_FIELDS}, invalid=sum(state.invalid.values()),
                             rps_rejected=record["rps_rejected"], seconds=round(state.seconds, 3))
        if progress is not None:
            progress(state.iteration, record["best"])
        if checkpoint is not None and (state.iteration % settings.checkpoint_every == 0
                                       or state.iteration == settings.iterations):
            checkpoint.save(state, settings)
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
