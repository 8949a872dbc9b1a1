"""NSGA-II over integer genomes with DEAP: (proxy score up, costs down), under constraints.

An (mu + lambda) loop: each generation breeds `population` offspring (binary tournaments
on feasibility, Pareto rank and crowding distance; `tools.cxUniform`, `tools.mutUniformInt`),
scores the new architectures and keeps the best `population` of parents and offspring
(`tools.selNSGA2` on the feasible ones; infeasible ones only fill up, least violating
first: Deb's constraint handling). Architectures are identified by their decoded config
(`SearchSpace.key`): a population never holds two genomes of one architecture, and no
architecture is scored twice (the `Evaluator`'s memo).

All randomness is Python's `random` module, as DEAP's operators draw from it; it is
seeded with `seed`, and its state is saved in the checkpoint written after every
generation, so `resume` continues to exactly the result an uninterrupted run gives.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

from deap import base, tools

from lpzero.errors import ResultError
from lpzero.files import atomic_write_json

from .space import NASError, SearchSpace

CHECKPOINT_FILE = "checkpoint.json"
CHECKPOINT_VERSION = 1
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


def fitness_class(n_costs: int) -> type:
    """A DEAP fitness maximising the score and minimising `n_costs` costs (made per run, not at import)."""
    return type(f"NASFitness{n_costs}", (base.Fitness,), {"weights": (1.0,) + (-1.0,) * n_costs})


class Individual(list):
    """A genome with its architecture's key, DEAP fitness, and constraint standing."""

    key: str
    fitness: base.Fitness
    feasible: bool = False
    violation: float = math.inf
    rank: int = 0


@dataclass
class NSGAResult:
    population: list[list[int]]
    log: list[dict]


def run_nsga(space: SearchSpace, evaluator: Evaluator, settings: NSGASettings, out: Path | None = None,
             resume: bool = False, run_record: dict | None = None,
             progress: Callable[[int, int], None] | None = None) -> NSGAResult:
    """NSGA-II on `space`; checkpoints to `out/checkpoint.json` after each generation when `out` is given.

    `run_record` (JSON-able) describes everything else that decides the result (space, proxy,
    costs, limits, batch); a resumed run must have the same. `progress(generation, evaluated)`
    is called after each generation (0 = the initial population).
    """
    fitness = fitness_class(len(evaluator.costs))
    choices = space.choices()
    if any(n < 1 for n in choices):
        raise NASError(f"space {space.name}: a gene has no choices")
    record = {"nsga": asdict(settings), "space": space.name, **(run_record or {})}
    checkpoint = None if out is None else Path(out) / CHECKPOINT_FILE
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
    log: list[dict] = []

    def make(genome: Sequence[int]) -> Individual:
        ind = Individual(genome)
        ind.key = space.key(space.decode(ind))
        ind.fitness = fitness()
        return ind

    def score(inds: list[Individual]) -> int:
        state = random.getstate()  # a task that draws from `random` in this process must not shift the search
        new = evaluator.evaluate([i.key for i in inds])
        random.setstate(state)
        for ind in inds:
            _assess(ind, evaluator)
        return new

    if resume and checkpoint is not None and checkpoint.is_file():
        saved = load_checkpoint(checkpoint, record)
        evaluator.memo.update(saved["memo"])
        log = saved["log"]
        random.setstate(_state_from_json(saved["random_state"]))
        population = [make(g) for g in saved["population"]]
        score(population)
        population = _select(population, settings.population)  # ranks and crowding distances, as saved
        start = saved["generation"] + 1
    else:
        random.seed(settings.seed)
        t = time.perf_counter()
        population = _initial(space, settings.population, make)
        new = score(population)
        population = _select(population, settings.population)
        log.append(_log_row(0, population, evaluator, new, time.perf_counter() - t))
        _save(checkpoint, record, 0, population, evaluator, log)
        if progress:
            progress(0, len(evaluator.memo))
        start = 1

    for gen in range(start, settings.generations + 1):
        t = time.perf_counter()
        offspring = _breed(population, settings, choices, make)
        new = score(offspring)
        population = _select(population + offspring, settings.population)
        log.append(_log_row(gen, population, evaluator, new, time.perf_counter() - t))
        _save(checkpoint, record, gen, population, evaluator, log)
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


def _initial(space: SearchSpace, size: int, make: Callable) -> list[Individual]:
    choices = space.choices()
    population: dict[str, Individual] = {}
    for _ in range(size * BREED_TRIES):
        if len(population) == size:
            break
        ind = make([random.randrange(n) for n in choices])
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


def _breed(population: list[Individual], settings: NSGASettings, choices: list[int],
           make: Callable) -> list[Individual]:
    taken = {i.key for i in population}
    up = [n - 1 for n in choices]
    indpb = 1.0 / len(choices)
    offspring: list[Individual] = []
    for _ in range(settings.population * BREED_TRIES):
        if len(offspring) >= settings.population:
            break
        if len(population) >= 2:
            a, b = random.sample(population, 2)
            c, d = random.sample(population, 2)
            p1, p2 = _better(a, b), _better(c, d)
        else:
            p1 = p2 = population[0]
        c1, c2 = list(p1), list(p2)
        if random.random() < settings.crossover:
            tools.cxUniform(c1, c2, 0.5)
        for child in (c1, c2):
            if random.random() < settings.mutation:
                tools.mutUniformInt(child, low=0, up=up, indpb=indpb)
            ind = make(child)
            if ind.key not in taken and len(offspring) < settings.population:
                taken.add(ind.key)
                offspring.append(ind)
    return offspring


def _select(individuals: list[Individual], size: int) -> list[Individual]:
    """The next parents: NSGA-II on the feasible, then the least violating infeasible ones."""
    feasible = [i for i in individuals if i.feasible]
    infeasible = sorted((i for i in individuals if not i.feasible), key=lambda i: i.violation)
    chosen = tools.selNSGA2(feasible, size) if len(feasible) > size else feasible
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


def _state_to_json(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _state_from_json(state: list) -> tuple:
    version, internal, gauss = state
    return version, tuple(internal), gauss


def _save(path: Path | None, record: dict, generation: int, population: list[Individual], evaluator: Evaluator,
          log: list[dict]) -> None:
    if path is None:
        return
    atomic_write_json(path, {"version": CHECKPOINT_VERSION, "record": record, "generation": generation,
                             "population": [list(i) for i in population],
                             "random_state": _state_to_json(random.getstate()), "log": log,
                             "memo": evaluator.memo}, indent=None)


def load_checkpoint(path: Path, record: dict | None = None) -> dict:
    """A checkpoint, checked; with `record`, ResultError unless the run it belongs to had the same settings
    (the number of generations may grow)."""
    try:
        saved = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ResultError(f"{path}: malformed JSON (line {e.lineno}): {e.msg}") from None
    keys = ("version", "record", "generation", "population", "random_state", "log", "memo")
    if not isinstance(saved, dict) or any(k not in saved for k in keys):
        raise ResultError(f"{path}: not an lpzero nas checkpoint")
    if saved["version"] != CHECKPOINT_VERSION:
        raise ResultError(f"{path}: checkpoint version {saved['version']}, this lpzero reads {CHECKPOINT_VERSION}")
    if record is not None:
        differ = _differences(saved["record"], json.loads(json.dumps(record)))
        if differ:
            raise ResultError(f"{path}: --resume with other settings than the checkpoint's ({', '.join(differ)}); "
                              "use another --out or the same settings")
    return saved


def _differences(saved: dict, now: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(saved) | set(now)):
        if prefix + k == "nsga.generations":
            continue
        a, b = saved.get(k), now.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} then, {b!r} now")
    return out
