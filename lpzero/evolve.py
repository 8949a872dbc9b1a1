"""The evolution loop of the paper's Algorithm 1, with checkpoints.

Each iteration draws two parents from the top `top_fraction` of the population,
applies crossover (probability `crossover`) and mutation (probability `mutation`),
evaluates the first offspring and keeps the best `population` distinct proxies.
Two proxies are the same when they order the sampled architectures identically
(`distinct="ranking"`, the default): their fitness is equal by construction, and
copies of one proxy (``l1(G)``, ``sqrt(l1(G))``, ...) would otherwise fill the small
parent pool. Of two such trees the smaller is kept; `distinct="text"` counts only
identical trees as the same.
`random_search=True` replaces the variation step by a fresh random proxy (the
paper's random-search baseline). Fitness comes from the evaluator, i.e. from cached
inputs: no model is built here.

The loop state (population, iteration, `random` state, counters, log) is written
as JSON every `checkpoint_every` iterations; `resume=True` continues from it and
reaches the same result as an uninterrupted run.
"""
from __future__ import annotations

import csv
import json
import random
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from deap import base, creator, gp

from .errors import LPZeroError
from .fitness import FitnessEvaluator, is_valid_fitness
from .genome import PaperGenes

#: settings a resumed run may change (all others must match the checkpoint's)
RESUMABLE_CHANGES = ("iterations", "checkpoint_every")
LOG_FIELDS = ("run", "iteration", "best", "median", "invalid", "rps_rejected", "seconds")
CHECKPOINT = "checkpoint.json"


@dataclass
class EvolveSettings:
    """Paper Algorithm 1 defaults (SPEC section 4)."""

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


@dataclass
class EvolutionState:
    population: list
    iteration: int = 0
    invalid: Counter = field(default_factory=Counter)
    log: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def _to_record(ind) -> dict:
    rec = {"tree": str(ind), "fitness": ind.fitness.values[0]}
    genes = getattr(ind, "genes", None)
    if genes is not None:
        rec["genes"] = genes.to_dict()
    return rec


def _from_record(rec: dict, pset: gp.PrimitiveSetTyped):
    ind = creator.ProxyTree(gp.PrimitiveTree.from_string(rec["tree"], pset))
    ind.fitness.values = (float(rec["fitness"]),)
    if "genes" in rec:
        ind.genes = PaperGenes.from_dict(rec["genes"])
    return ind


def _json_state(rs) -> list:
    version, internal, gauss = rs
    return [version, list(internal), gauss]


def save_checkpoint(path: Path, state: EvolutionState, settings: EvolveSettings, rps_counts: dict) -> None:
    data = {
        "settings": asdict(settings),
        "iteration": state.iteration,
        "population": [_to_record(ind) for ind in state.population],
        "invalid": dict(state.invalid),
        "rps": rps_counts,
        "log": state.log,
        "seconds": state.seconds,
        "random_state": _json_state(random.getstate()),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)  # atomic: an interrupted write never leaves a torn checkpoint


def load_checkpoint(path: Path, toolbox: base.Toolbox) -> tuple[EvolutionState, dict]:
    data = json.loads(path.read_text())
    version, internal, gauss = data["random_state"]
    random.setstate((version, tuple(internal), gauss))
    state = EvolutionState(
        population=[_from_record(r, toolbox.pset) for r in data["population"]],
        iteration=data["iteration"],
        invalid=Counter(data["invalid"]),
        log=data["log"],
        seconds=data["seconds"],
    )
    return state, data


def _evaluate(toolbox: base.Toolbox, evaluator: FitnessEvaluator, inds: list, invalid: Counter) -> None:
    """Fitness through `toolbox.map` (register a pool's map to evaluate in parallel)."""
    for ind, fit in zip(inds, toolbox.map(toolbox.evaluate, inds)):
        ind.fitness.values = fit
        if not is_valid_fitness(fit):  # the reason is recomputed here, for invalid proxies only
            invalid[evaluator.details(ind).reason.split(" on ")[0]] += 1


def identity_function(distinct: str, evaluator: FitnessEvaluator) -> Callable:
    """What makes two proxies the same under `distinct` ("ranking" or "text"), as a key function."""
    if distinct == "text":
        return str
    if distinct == "ranking":
        return lambda ind: evaluator.details(ind).ranking or str(ind)
    raise ValueError(f"unknown distinct={distinct!r} (known: ranking, text)")


def rank_key(ind) -> tuple:
    """Best first; among equally fit proxies the smaller tree first (parsimony)."""
    return -ind.fitness.values[0], len(ind), str(ind)


def _admit(population: list, members: dict, identity: Callable, child, size: int) -> None:
    """Put a valid child into the population unless the same proxy, as fit and no larger, is there.

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
    evaluator: FitnessEvaluator,
    settings: EvolveSettings,
    out_dir: Path | None = None,
    resume: bool = False,
    progress: Callable[[int, float], None] | None = None,
) -> EvolutionState:
    """Run (or continue) Algorithm 1; returns the final state (population best first)."""
    ckpt = out_dir / CHECKPOINT if out_dir is not None else None
    identity = identity_function(settings.distinct, evaluator)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    if resume and ckpt is not None and ckpt.is_file():
        state, data = load_checkpoint(ckpt, toolbox)
        saved = data["settings"]
        changed = [f"{k}={saved.get(k)!r}" for k, v in asdict(settings).items()
                   if k not in RESUMABLE_CHANGES and saved.get(k) != v]
        if changed:
            raise LPZeroError(f"{ckpt}: written with other settings ({', '.join(changed)}); resume with "
                              "those, or start afresh without --resume")
        toolbox.rps_log.rejected = data["rps"]["rejected"]
        toolbox.rps_log.gave_up = data["rps"]["gave_up"]
        toolbox.rps_log.reasons.update(data["rps"]["reasons"])
        for ind in state.population:  # re-fill the memo; cached fitness makes this cheap
            evaluator.details(ind)
    else:
        random.seed(settings.seed)
        state = EvolutionState(population=[])
        drawn = toolbox.population(settings.population)
        _evaluate(toolbox, evaluator, drawn, state.invalid)
        members: dict = {}
        for _ in range(10):  # random trees that are the same proxy as another are redrawn
            for ind in drawn:
                _admit(state.population, members, identity, ind, settings.population)
            missing = settings.population - len(state.population)
            if not missing:
                break
            drawn = toolbox.population(missing)
            _evaluate(toolbox, evaluator, drawn, state.invalid)

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
        _evaluate(toolbox, evaluator, [child], state.invalid)
        if is_valid_fitness(child.fitness.values):
            _admit(state.population, members, identity, child, settings.population)
        state.iteration += 1
        state.seconds = time.perf_counter() - started
        fits = [i.fitness.values[0] for i in state.population]
        state.log.append({
            "iteration": state.iteration,
            "best": fits[0],
            "median": statistics.median(fits),
            "invalid": sum(state.invalid.values()),
            "rps_rejected": toolbox.rps_log.rejected,
            "seconds": round(state.seconds, 3),
        })
        if progress is not None:
            progress(state.iteration, fits[0])
        if ckpt is not None and (state.iteration % settings.checkpoint_every == 0 or state.iteration == settings.iterations):
            save_checkpoint(ckpt, state, settings, rps_counts(toolbox))
    return state


def rps_counts(toolbox: base.Toolbox) -> dict:
    log = toolbox.rps_log
    return {"rejected": log.rejected, "gave_up": log.gave_up, "reasons": dict(log.reasons)}


def write_log_csv(path: Path, logs: list[list[dict]]) -> None:
    """One CSV of the per-iteration logs of a search's runs (column `run`: the run's index)."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LOG_FIELDS)
        w.writeheader()
        for run, log in enumerate(logs):
            w.writerows({"run": run, **row} for row in log)
