"""NSGA-II over integer genomes with DEAP: (proxy score up, costs down), under constraints.

An (mu + lambda) loop: each generation breeds `population` offspring (binary tournaments
on feasibility, Pareto rank and crowding distance; `tools.cxUniform`, `tools.mutUniformInt`),
scores the new architectures and keeps the best `population` of parents and offspring
(`tools.selNSGA2` on the feasible ones; infeasible ones only fill up, least violating
first: Deb's constraint handling). Architectures are identified by their decoded config
(`SearchSpace.key`): a population never holds two genomes of one architecture, and no
architecture is scored twice (the `Evaluator`'s memo).

The operators are a DEAP `base.Toolbox` (`build_nsga_toolbox`), and the loop calls
nothing else, so a research script can re-register any of them, or pass a toolbox made
by hand to `run_nsga`. Registrations: `from_genome(genome)` (an individual of a list of
genes, with its architecture's key and a fresh fitness), `genome()` (random genes),
`individual()` (`tools.initIterate` of the two), `population()` (distinct architectures),
`select_parents(population)` (two parents), `mate(a, b)`, `mutate(a)` (each returning a
tuple, as DEAP's operators do; applied to clones, so they may work in place) and
`select(individuals, k)` (`tools.selNSGA2`, on the feasible ones).

All randomness is Python's `random` module, as DEAP's operators draw from it; it is
seeded with `seed`, and its state is saved in the checkpoint (`lpzero.checkpoint`)
written after every generation, so `resume` continues to exactly the result an
uninterrupted run gives.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from deap import base, creator, tools

from lpzero.checkpoint import (Checkpoint, CheckpointFormat, random_state, random_state_from_json, read_checkpoint,
                               require_same, write_checkpoint)
from lpzero.errors import ResultError

from .space import NASError, SearchSpace

CHECKPOINT_FILE = "checkpoint.json"
CHECKPOINT_VERSION = 1
#: the checkpoint of a search (NSGA-II or an exhaustive pass, which saves no population or random state)
NAS_CHECKPOINT = CheckpointFormat("lpzero nas", CHECKPOINT_VERSION,
                                  ("record", "generation", "population", "random_state", "log", "memo"))
#: what a resume may change: more generations, and the path the proxy was read from (a found proxy is
#: its tree, orientation and op table, a hand-designed one its name and orientation)
MAY_CHANGE = ("nsga.generations", "proxy.source")
#: the memo flag of a candidate whose task raised (not an invalid score): a resume scores it again
RETRY = "retry"
#: tries to breed an offspring whose architecture is not already in the population
BREED_TRIES = 20


@dataclass(frozen=True)
class NSGASettings:
    """The genetic algorithm's settings."""

    population: int = 40
    generations: int = 25
    crossover: float = 0.9
    #: probability that an offspring is mutated; each gene then changes with probability 1 / genome length
    mutation: float = 1.0
    seed: int = 42

    def __post_init__(self) -> None:
        if self.population < 2:
            raise NASError(f"population {self.population}: at least 2")
        if self.generations < 0:
            raise NASError(f"generations {self.generations}: at least 0")
        for name in ("crossover", "mutation"):
            if not 0 <= getattr(self, name) <= 1:
                raise NASError(f"{name} {getattr(self, name)}: a probability in [0, 1]")


class Evaluator:
    """Scores architectures by key through `evaluate_many(keys) -> {key: result}`, each key once.

    `memo` holds every result so far (key -> the dict `evaluate_candidate` returns); results
    must carry `score` (None: invalid), `feasible`, `violation` and each cost.
    """

    def __init__(self, evaluate_many: Callable[[list[str]], dict[str, dict]], costs: Sequence[str],
                 memo: dict[str, dict] | None = None) -> None:
        self.evaluate_many = evaluate_many
        self.costs = tuple(costs)
        self.memo: dict[str, dict] = dict(memo or {})

    def evaluate(self, keys: Sequence[str]) -> int:
        """Score the keys not in the memo; how many were new."""
        new = list(dict.fromkeys(k for k in keys if k not in self.memo))
        if new:
            self.memo.update(self.evaluate_many(new))
        return len(new)

    def valid(self, key: str) -> bool:
        """Feasible and scored."""
        r = self.memo[key]
        return bool(r["feasible"]) and r["score"] is not None

    def objectives(self, key: str) -> tuple[float, ...]:
        r = self.memo[key]
        return (float(r["score"]),) + tuple(float(r[c]) for c in self.costs)


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
    population: list[list[int]]
    log: list[dict]


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


def build_nsga_toolbox(space: SearchSpace, settings: NSGASettings, n_costs: int = 1) -> base.Toolbox:
    """The NSGA-II operators on `space` as a DEAP toolbox (see the module docstring).

    `population()` draws `settings.population` distinct architectures; fitness has the score
    and `n_costs` costs. Each gene mutates with probability 1 / genome length.
    """
    choices = space.choices()
    if any(n < 1 for n in choices):
        raise NASError(f"space {space.name}: a gene has no choices")
    _, individual_class = ensure_nas_creator(n_costs)
    tb = base.Toolbox()
    tb.register("from_genome", individual_from_genome, space=space, cls=individual_class)
    tb.register("genome", random_genome, choices)
    tb.register("individual", tools.initIterate, tb.from_genome, tb.genome)
    tb.register("population", distinct_population, tb.individual, settings.population)
    tb.register("select_parents", constrained_tournament)
    tb.register("mate", tools.cxUniform, indpb=0.5)
    tb.register("mutate", tools.mutUniformInt, low=0, up=[n - 1 for n in choices], indpb=1.0 / len(choices))
    tb.register("select", tools.selNSGA2)
    return tb


def run_nsga(space: SearchSpace, evaluator: Evaluator, settings: NSGASettings, out: Path | None = None,
             resume: bool = False, run_record: dict | None = None,
             progress: Callable[[int, int], None] | None = None, toolbox: base.Toolbox | None = None) -> NSGAResult:
    """NSGA-II on `space`; checkpoints to `out/checkpoint.json` after each generation when `out` is given.

    `run_record` (JSON-able) describes everything else that decides the result (space, proxy,
    costs, limits, batch); a resumed run must have the same. `progress(generation, evaluated)`
    is called after each generation (0 = the initial population). `toolbox`: the operators
    (`build_nsga_toolbox(space, settings, len(evaluator.costs))` if not given).
    """
    if toolbox is None:
        toolbox = build_nsga_toolbox(space, settings, len(evaluator.costs))
    record = {"nsga": asdict(settings), "space": space.name, **(run_record or {})}
    checkpoint = None if out is None else Path(out) / CHECKPOINT_FILE
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
    log: list[dict] = []

    def score(inds: list[Individual]) -> int:
        state = random.getstate()  # a task that draws from `random` in this process must not shift the search
        new = evaluator.evaluate([i.key for i in inds])
        random.setstate(state)
        for ind in inds:
            _assess(ind, evaluator)
        return new

    def save(generation: int, population: list[Individual]) -> None:
        if checkpoint is not None:
            save_checkpoint(checkpoint, record, evaluator.memo, generation=generation,
                            population=[list(i) for i in population], log=log, rng_state=random_state())

    if resume and checkpoint is not None and checkpoint.is_file():
        saved = load_checkpoint(checkpoint, record)
        evaluator.memo.update(restored_memo(saved))
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
        log.append(_log_row(0, population, evaluator, new, time.perf_counter() - t))
        save(0, population)
        if progress:
            progress(0, len(evaluator.memo))
        start = 1

    for gen in range(start, settings.generations + 1):
        t = time.perf_counter()
        offspring = _breed(toolbox, population, settings)
        new = score(offspring)
        population = _survivors(toolbox, population + offspring, settings.population)
        log.append(_log_row(gen, population, evaluator, new, time.perf_counter() - t))
        save(gen, population)
        if progress:
            progress(gen, len(evaluator.memo))
    return NSGAResult([list(i) for i in population], log)


def _assess(ind: Individual, evaluator: Evaluator) -> None:
    r = evaluator.memo[ind.key]
    ind.feasible = evaluator.valid(ind.key)
    if ind.feasible:
        ind.violation = 0.0
        ind.fitness.values = evaluator.objectives(ind.key)
    else:
        # a candidate over its limits is ranked by how far; one without a valid score comes last
        ind.violation = float(r["violation"]) if r["feasible"] is False else math.inf


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


def _log_row(gen: int, population: list[Individual], evaluator: Evaluator, new: int, seconds: float) -> dict:
    feasible = [i for i in population if i.feasible]
    row = {"generation": gen, "evaluated": len(evaluator.memo), "new": new, "feasible": len(feasible),
           "front": sum(1 for i in feasible if i.rank == 0),
           "best_score": max((i.fitness.values[0] for i in feasible), default=None), "seconds": seconds}
    for k, cost in enumerate(evaluator.costs, start=1):
        row[f"min_{cost}"] = min((i.fitness.values[k] for i in feasible), default=None)
    return row


def _json_object(value: Any) -> dict:
    if not isinstance(value, dict):
        raise TypeError(f"a JSON object, not {type(value).__name__}")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_memo(memo: Any, costs: Sequence[str] = ()) -> dict[str, dict]:
    """`memo` if it is what `Evaluator.memo` holds: key -> {"score": a number or null, "feasible": true/false,
    "violation": a number, each of `costs` a number where the entry is feasible and scored};
    TypeError or ValueError naming the first entry and key that is not."""
    for key, entry in _json_object(memo).items():
        if not isinstance(entry, dict):
            raise TypeError(f"entry {key!r} is a {type(entry).__name__}, not a JSON object")
        needed = ("score", "feasible", "violation")
        if entry.get("feasible") is True and entry.get("score") is not None:
            needed += tuple(costs)
        missing = [k for k in needed if k not in entry]
        if missing:
            raise ValueError(f"entry {key!r} has no {missing[0]!r}")
        if not (entry["score"] is None or _is_number(entry["score"])):
            raise TypeError(f"entry {key!r}: score {entry['score']!r} is not a number or null")
        if not isinstance(entry["feasible"], bool):
            raise TypeError(f"entry {key!r}: feasible {entry['feasible']!r} is not true or false")
        wrong = [k for k in ("violation", *needed[3:]) if not _is_number(entry[k])]
        if wrong:
            raise TypeError(f"entry {key!r}: {wrong[0]} {entry[wrong[0]]!r} is not a number")
    return memo


def save_checkpoint(path: Path, record: dict, memo: dict[str, dict], *, generation: int = 0,
                    population: list[list[int]] | None = None, log: list[dict] | None = None,
                    rng_state: list | None = None) -> None:
    """Write a search's checkpoint: its `record`, the scores so far (`memo`), and for NSGA-II the
    generation, population, log and `random` state (`lpzero.checkpoint.random_state()`)."""
    write_checkpoint(path, NAS_CHECKPOINT, {"record": record, "generation": generation,
                                            "population": population or [], "random_state": rng_state,
                                            "log": log or [], "memo": memo})


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


def restored_memo(saved: Checkpoint) -> dict[str, dict]:
    """The checkpoint's scores without the candidates whose task raised (`RETRY`): a resume scores them again,
    since the error may be fixed (a file that could not be read); an invalid score stays."""
    return {k: r for k, r in saved["memo"].items() if not (isinstance(r, dict) and r.get(RETRY))}
