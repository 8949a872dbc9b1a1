"""NSGA-II over integer genomes with DEAP: (proxy score up, costs down), under constraints.

An (mu + lambda) loop: each generation breeds `population` offspring (binary tournaments
on feasibility, Pareto rank and crowding distance; `tools.cxUniform`, `tools.mutUniformInt`),
scores the new architectures and keeps the best `population` of parents and offspring
(`tools.selNSGA2` on the feasible ones; infeasible ones only fill up, least violating
first: Deb's constraint handling). Architectures are identified by their decoded config
(`SearchSpace.key`): a population never holds two genomes of one architecture, and no
architecture is scored twice (the scores so far, `memo`, by key).

The loop has the GP loop's contract (`lpzero.search.loop`): everything it calls is a DEAP
`base.Toolbox` (`build_nsga_toolbox`) — `evaluate(key)` (a `CandidateResult`) through
`map` (register an executor's `map` to score candidates in parallel), `from_genome(genome)`
(an individual of a list of genes, with its architecture's key and a fresh fitness),
`genome()`, `individual()`, `population()` (distinct architectures), `select_parents(population)`
(two parents), `mate(a, b)`, `mutate(a)` (each returning a tuple, as DEAP's operators do;
applied to clones) and `select(individuals, k)` (`tools.selNSGA2`) — so a research script can
re-register any of them, or pass a toolbox made by hand. What the loop records is passed in,
as DEAP's algorithms take it: `halloffame` (e.g. `tools.ParetoFront()`, updated with every
generation's feasible population) and `checkpoint` (a `NASCheckpoint`).

All randomness is Python's `random` module, as DEAP's operators draw from it; it is
seeded with `seed`, and its state is saved in the checkpoint (`lpzero.checkpoint`)
written after every generation, so a resume continues to exactly the result an
uninterrupted run gives. An exhaustive pass (`score_all`, a tabular space) saves the
scores every `CHUNK` architectures in the same checkpoint format.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from deap import base, creator, tools

from lpzero.benchmarks import NASError, SearchSpace
from lpzero.checkpoint import (Checkpoint, CheckpointFormat, random_state, random_state_from_json, read_checkpoint,
                               require_same, write_checkpoint)
from lpzero.errors import ResultError
from lpzero.settings import bounded, check_ranges

from .evaluate import CandidateResult

CHECKPOINT_FILE = "checkpoint.json"
CHECKPOINT_VERSION = 1
#: the checkpoint of a search (NSGA-II or an exhaustive pass, which saves no population or random state)
NAS_CHECKPOINT = CheckpointFormat("lpzero nas", CHECKPOINT_VERSION,
                                  ("record", "generation", "population", "random_state", "log", "memo"))
#: what a resume may change: more generations, and the path the proxy was read from (a found proxy is
#: its tree, orientation and op table, a hand-designed one its name and orientation)
MAY_CHANGE = ("nsga.generations", "proxy.source")
#: tries to breed an offspring whose architecture is not already in the population
BREED_TRIES = 20
#: an exhaustive pass checkpoints after every CHUNK architectures
CHUNK = 64


@dataclass(frozen=True)
class NSGASettings:
    """The genetic algorithm's settings; the CLI's defaults and ranges are these."""

    population: int = bounded(40, min=2)
    generations: int = bounded(25, min=0)
    crossover: float = bounded(0.9, min=0, max=1)
    #: probability that an offspring is mutated; each gene then changes with probability 1 / genome length
    mutation: float = bounded(1.0, min=0, max=1)
    seed: int = 42

    def __post_init__(self) -> None:
        check_ranges(self, "NSGA-II")


class Individual(list):
    """A genome with its architecture's key, DEAP fitness, and constraint standing."""

    key: str
    fitness: base.Fitness
    feasible: bool = False
    violation: float = math.inf
    rank: int = 0


def ensure_nas_creator(n_costs: int) -> tuple[type, type]:
    """DEAP's fitness (score up, `n_costs` costs down) and individual classes, created once in
    `deap.creator` (never at import time) as `NASFitness<n>` and `NASIndividual<n>`."""
    fitness, individual = f"NASFitness{n_costs}", f"NASIndividual{n_costs}"
    if not hasattr(creator, fitness):
        creator.create(fitness, base.Fitness, weights=(1.0,) + (-1.0,) * n_costs)
    if not hasattr(creator, individual):
        creator.create(individual, Individual, fitness=getattr(creator, fitness))
    return getattr(creator, fitness), getattr(creator, individual)


def fitness_class(n_costs: int) -> type:
    """The DEAP fitness maximising the score and minimising `n_costs` costs (`ensure_nas_creator`)."""
    return ensure_nas_creator(n_costs)[0]


@dataclass
class NSGAResult:
    """The final population (genomes), the per-generation log, and every candidate scored (by key)."""

    population: list[list[int]]
    log: list[dict]
    memo: dict[str, CandidateResult] = field(default_factory=dict)


def individual_from_genome(genome: Iterable[int], space: SearchSpace, cls: type) -> Individual:
    """An individual of class `cls` holding `genome`, keyed by its decoded architecture, with a fresh fitness."""
    ind = cls(genome)
    ind.key = space.key(space.decode(ind))
    return ind


def random_genome(choices: Sequence[int]) -> list[int]:
    """One uniformly random choice per gene."""
    return [random.randrange(n) for n in choices]


def distinct_population(individual: Callable[[], Individual], n: int, tries: int = BREED_TRIES) -> list[Individual]:
    """Up to `n` individuals of distinct architectures (keys), from at most `n * tries` draws."""
    population: dict[str, Individual] = {}
    for _ in range(n * tries):
        if len(population) == n:
            break
        ind = individual()
        population.setdefault(ind.key, ind)
    return list(population.values())


def _better(a: Individual, b: Individual) -> Individual:
    """Binary tournament: feasible first, then less violation, lower Pareto rank, larger crowding distance."""
    if a.feasible != b.feasible:
        return a if a.feasible else b
    if not a.feasible:
        return a if a.violation <= b.violation else b
    if a.rank != b.rank:
        return a if a.rank < b.rank else b
    return a if a.fitness.crowding_dist >= b.fitness.crowding_dist else b


def constrained_tournament(population: list[Individual]) -> list[Individual]:
    """Two parents, each the better of two random members (`_better`: Deb's constraint handling)."""
    if len(population) < 2:
        return [population[0], population[0]]
    a, b = random.sample(population, 2)
    c, d = random.sample(population, 2)
    return [_better(a, b), _better(c, d)]


def build_nsga_toolbox(space: SearchSpace, settings: NSGASettings, n_costs: int = 1,
                       evaluate: Callable[[str], CandidateResult] | None = None) -> base.Toolbox:
    """The NSGA-II operators on `space` as a DEAP toolbox (see the module docstring), with `evaluate` (a key
    -> its `CandidateResult`) registered when given.

    `population()` draws `settings.population` distinct architectures; fitness has the score
    and `n_costs` costs. Each gene mutates with probability 1 / genome length.
    """
    choices = space.choices()
    if any(n < 1 for n in choices):
        raise NASError(f"space {space.name}: a gene has no choices")
    _, individual_class = ensure_nas_creator(n_costs)
    tb = base.Toolbox()
    if evaluate is not None:
        tb.register("evaluate", evaluate)
    tb.register("from_genome", individual_from_genome, space=space, cls=individual_class)
    tb.register("genome", random_genome, choices)
    tb.register("individual", tools.initIterate, tb.from_genome, tb.genome)
    tb.register("population", distinct_population, tb.individual, settings.population)
    tb.register("select_parents", constrained_tournament)
    tb.register("mate", tools.cxUniform, indpb=0.5)
    tb.register("mutate", tools.mutUniformInt, low=0, up=[n - 1 for n in choices], indpb=1.0 / len(choices))
    tb.register("select", tools.selNSGA2)
    return tb


@dataclass
class NASCheckpoint:
    """Where a search saves its scores (and NSGA-II its population, log and `random` state) after every
    generation or chunk, and what the run it belongs to was: `record` (JSON: the space, the proxy, costs,
    limits, batch, NSGA-II's settings), which a resume must have the same (but more generations).
    `resume`: continue from the file when there is one."""

    path: Path
    record: dict
    resume: bool = False

    def save(self, memo: dict[str, CandidateResult], generation: int = 0, population: list[list[int]] | None = None,
             log: list[dict] | None = None, rng_state: list | None = None) -> None:
        """Write the checkpoint: the scores so far (`memo`) and for NSGA-II the generation, population, log and
        `random` state (`lpzero.checkpoint.random_state()`)."""
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        write_checkpoint(self.path, NAS_CHECKPOINT, {"record": self.record, "generation": generation,
                                                     "population": population or [], "random_state": rng_state,
                                                     "log": log or [], "memo": {k: r.to_json() for k, r in memo.items()}})

    def saved(self) -> Checkpoint | None:
        """The checkpoint to continue from (None: start afresh), checked against `record`."""
        if not (self.resume and Path(self.path).is_file()):
            return None
        return load_checkpoint(self.path, self.record)


def check_memo(memo: Any, costs: Sequence[str] = ()) -> dict[str, CandidateResult]:
    """The scores a checkpoint holds (key -> `CandidateResult.to_json()`); TypeError or ValueError naming the
    first entry and key that is not one."""
    if not isinstance(memo, dict):
        raise TypeError(f"a JSON object, not {type(memo).__name__}")
    return {key: CandidateResult.from_json(entry, key, tuple(costs)) for key, entry in memo.items()}


def _json_object(value: Any) -> dict:
    if not isinstance(value, dict):
        raise TypeError(f"a JSON object, not {type(value).__name__}")
    return value


def load_checkpoint(path: Path, record: dict | None = None, ignore: Sequence[str] = ()) -> Checkpoint:
    """A search's checkpoint, checked; with `record`, ResultError unless the run it belongs to had the same
    record (the number of generations may grow, never shrink; keys in `ignore` are not compared)."""
    saved = read_checkpoint(path, NAS_CHECKPOINT)
    settings = saved.read("record", _json_object).get("settings")
    costs = settings.get("costs", []) if isinstance(settings, dict) else []
    # every caller reads the scores: a damaged memo is named here, not as a traceback halfway through
    saved.read("memo", lambda memo: check_memo(memo, costs if isinstance(costs, list) else []))
    if record is not None:
        before = saved.read("record", _json_object)
        if "fingerprint" in before and before["fingerprint"] != record.get("fingerprint"):
            raise ResultError(f"{path}: space {record.get('space')} changed since this checkpoint was written (its "
                              f"data fingerprint was {before['fingerprint']}, now {record.get('fingerprint')}): its "
                              "scores would be mixed with the new ones; start afresh without --resume or use another "
                              "output folder")
        require_same(path, before, record, (*MAY_CHANGE, *ignore))
        nsga = record.get("nsga")
        done = saved.read("generation", int)
        if isinstance(nsga, dict) and nsga.get("generations", done) < done:
            raise ResultError(f"{path}: the checkpoint has done {done} generations: resume with --generations "
                              f"{done} or more, not {nsga['generations']}")
    return saved


def restored_memo(saved: Checkpoint) -> dict[str, CandidateResult]:
    """The checkpoint's scores without the candidates whose evaluation raised (`retry`): a resume scores them
    again, since the error may be fixed (a file that could not be read); an invalid score stays."""
    settings = saved["record"].get("settings")
    costs = settings.get("costs", []) if isinstance(settings, dict) else []
    return {k: r for k, r in check_memo(saved["memo"], costs).items() if not r.retry}


def score_keys(toolbox: base.Toolbox, memo: dict[str, CandidateResult], keys: Sequence[str],
               progress: Callable[[int], None] | None = None) -> int:
    """Score the `keys` not in `memo` with `toolbox.map(toolbox.evaluate, ...)`, each once, into `memo`;
    `progress(len(memo))` after each. How many were new."""
    new = list(dict.fromkeys(k for k in keys if k not in memo))
    state = random.getstate()  # a task that draws from `random` in this process must not shift the search
    for key, result in zip(new, toolbox.map(toolbox.evaluate, new)):
        memo[key] = result
        if progress is not None:
            progress(len(memo))
    random.setstate(state)
    return len(new)


def score_all(toolbox: base.Toolbox, keys: Sequence[str], checkpoint: NASCheckpoint | None = None,
              progress: Callable[[int], None] | None = None) -> dict[str, CandidateResult]:
    """An exhaustive pass: every key scored (through the toolbox, as NSGA-II scores), the scores checkpointed
    after every `CHUNK` of them; a checkpoint to resume from gives the scores it holds."""
    saved = checkpoint.saved() if checkpoint is not None else None
    memo = restored_memo(saved) if saved is not None else {}
    todo = [k for k in keys if k not in memo]
    for start in range(0, len(todo), CHUNK):
        score_keys(toolbox, memo, todo[start:start + CHUNK], progress)
        if checkpoint is not None:
            checkpoint.save(memo)  # no population or random state: nothing is drawn
    return memo


def run_nsga(toolbox: base.Toolbox, settings: NSGASettings, costs: Sequence[str] = ("params",),
             checkpoint: NASCheckpoint | None = None, halloffame: tools.ParetoFront | None = None,
             progress: Callable[[int], None] | None = None) -> NSGAResult:
    """NSGA-II with `toolbox` (see the module docstring); objectives: the score up, each of `costs` down.

    `checkpoint`: save after each generation (and, with `resume`, continue from it); `halloffame`: updated
    with the feasible population of each generation; `progress(scored)` after each candidate scored.
    """
    costs = tuple(costs)
    memo: dict[str, CandidateResult] = {}
    log: list[dict] = []

    def score(inds: list[Individual]) -> int:
        new = score_keys(toolbox, memo, [i.key for i in inds], progress)
        for ind in inds:
            _assess(ind, memo[ind.key], costs)
        return new

    def save(generation: int, population: list[Individual]) -> None:
        if halloffame is not None:
            halloffame.update([i for i in population if i.feasible])
        if checkpoint is not None:
            checkpoint.save(memo, generation, [list(i) for i in population], log, random_state())

    saved = checkpoint.saved() if checkpoint is not None else None
    if saved is not None:
        memo.update(restored_memo(saved))
        log = saved.read("log", list)
        rstate = saved.read("random_state", random_state_from_json)
        start = saved.read("generation", int) + 1
        random.setstate(rstate)
        population = saved.read("population", lambda genomes: [toolbox.from_genome(g) for g in genomes])
        score(population)
        population = _survivors(toolbox, population, settings.population)  # ranks and crowding distances, as saved
    else:
        random.seed(settings.seed)
        t = time.perf_counter()
        population = toolbox.population()
        new = score(population)
        population = _survivors(toolbox, population, settings.population)
        log.append(_log_row(0, population, memo, costs, new, time.perf_counter() - t))
        save(0, population)
        start = 1

    for gen in range(start, settings.generations + 1):
        t = time.perf_counter()
        offspring = _breed(toolbox, population, settings)
        new = score(offspring)
        population = _survivors(toolbox, population + offspring, settings.population)
        log.append(_log_row(gen, population, memo, costs, new, time.perf_counter() - t))
        save(gen, population)
    return NSGAResult([list(i) for i in population], log, memo)


def _assess(ind: Individual, result: CandidateResult, costs: tuple[str, ...]) -> None:
    ind.feasible = result.valid
    if ind.feasible:
        ind.violation = 0.0
        ind.fitness.values = result.objectives(costs)
    else:
        # a candidate over its limits is ranked by how far; one without a valid score comes last
        ind.violation = float(result.violation) if result.feasible is False else math.inf


def _breed(toolbox: base.Toolbox, population: list[Individual], settings: NSGASettings) -> list[Individual]:
    """`settings.population` offspring of architectures not in `population` (nor twice), if so many are found."""
    taken = {i.key for i in population}
    offspring: list[Individual] = []
    for _ in range(settings.population * BREED_TRIES):
        if len(offspring) >= settings.population:
            break
        p1, p2 = toolbox.select_parents(population)
        c1, c2 = toolbox.clone(p1), toolbox.clone(p2)
        if random.random() < settings.crossover:
            c1, c2 = toolbox.mate(c1, c2)
        for child in (c1, c2):
            if random.random() < settings.mutation:
                (child,) = toolbox.mutate(child)
            ind = toolbox.from_genome(child)  # the variation changed the genes: a new key, a fresh fitness
            if ind.key not in taken and len(offspring) < settings.population:
                taken.add(ind.key)
                offspring.append(ind)
    return offspring


def _survivors(toolbox: base.Toolbox, individuals: list[Individual], size: int) -> list[Individual]:
    """The next parents: `toolbox.select` (NSGA-II) on the feasible, then the least violating infeasible ones."""
    feasible = [i for i in individuals if i.feasible]
    infeasible = sorted((i for i in individuals if not i.feasible), key=lambda i: i.violation)
    chosen = toolbox.select(feasible, size) if len(feasible) > size else feasible
    # ranks and crowding distances of the survivors, for the next tournaments
    for rank, front in enumerate(tools.sortNondominated(chosen, len(chosen))):
        tools.emo.assignCrowdingDist(front)
        for ind in front:
            ind.rank = rank
    return chosen + infeasible[:size - len(chosen)]


def _log_row(gen: int, population: list[Individual], memo: dict, costs: tuple[str, ...], new: int,
             seconds: float) -> dict:
    feasible = [i for i in population if i.feasible]
    row = {"generation": gen, "evaluated": len(memo), "new": new, "feasible": len(feasible),
           "front": sum(1 for i in feasible if i.rank == 0),
           "best_score": max((i.fitness.values[0] for i in feasible), default=None), "seconds": seconds}
    for k, cost in enumerate(costs, start=1):
        row[f"min_{cost}"] = min((i.fitness.values[k] for i in feasible), default=None)
    return row
