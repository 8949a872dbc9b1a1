"""The held-out protocol of a search: its settings, the split of each benchmark, and the benchmarks' data.

`SearchSetup` is everything a search is run with besides the data (the CLI's defaults and ranges
are its fields'); `search_sample` splits a benchmark's architectures into a search part, a
held-out part and the fitness sample (seeded), `run_seed` seeds each run, `select_final` orders
the finalists; `SearchPart` is one benchmark of a search: its architectures, ground truth, split,
and where its inputs come from (its cache, or memory).
"""
from __future__ import annotations

import hashlib
import logging
import math
import random
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Mapping, Sequence

import numpy as np

from lpzero.benchmarks import Benchmark
from lpzero.benchmarks.selection import check_measured
from lpzero.cache import InputCache
from lpzero.errors import LPZeroError, UnknownNameError
from lpzero.primitives import OPS, OpTable, Weighted
from lpzero.settings import bounded, check_ranges

from .complexity import DEFAULT_SELECT, canonical_parsimony, parse_parsimony, parse_select
from .fitness import COMBINE, NORMALIZATIONS, correlation
from .loop import EvolveSettings
from .toolbox import TOOLBOXES

log = logging.getLogger("lpzero")

FINAL_SELECTIONS = ("search", "sample")


@dataclass
class SearchSetup:
    """Everything a search is run with besides the data; the CLI's defaults and ranges are these."""

    toolbox: str = "typed"
    sample: int = bounded(50, min=2)
    holdout: float = bounded(0.5, min=0, max=1, min_open=True, max_open=True)
    rps: bool = True
    n_unary: int = bounded(2, min=1)
    max_height: int = bounded(8, min=2)
    hall_of_fame: int = bounded(10, min=1)
    #: independent runs of Algorithm 1 (seeds from `run_seed`); the `hall_of_fame` fittest
    #: proxies of each compete in the final selection. 1 is the paper's single run.
    runs: int = bounded(8, min=1)
    #: how the final proxy is chosen from the hall of fame: "search" (highest ρ on the whole
    #: search part, of which the fitness sample is a subset) or "sample" (highest fitness)
    final_selection: str = "search"
    #: the found proxy, chosen on the complexity/search-part-ρ front with PySR's rules
    #: ("accuracy", "best", "score") or "simplest:DELTA"; see `lpzero.search.complexity`
    select: str = DEFAULT_SELECT
    #: parsimony pressure: "0" (none), "COEF" (selection fitness |ρ| - COEF x complexity, gplearn's
    #: coefficient) or "double:FITNESS_SIZE,PARSIMONY_SIZE" (DEAP's double tournament as `select`);
    #: see `lpzero.search.complexity.parse_parsimony`. Reported ρ is always the raw one.
    parsimony: str = "0"
    #: a search on several benchmarks (`lpzero evolve --benchmark a,b`): fitness is the "min" or
    #: "mean" of their |ρ| (`lpzero.search.fitness.COMBINE`); unused on one benchmark
    combine: str = "min"
    #: a search on several benchmarks: "none" (each |ρ| as it is) or "hand-designed" (each |ρ| divided by
    #: that of the benchmark's best hand-designed proxy on its fitness sample, so 1 means as good as it and
    #: a benchmark where every proxy ranks well weighs no more than a hard one); unused on one benchmark
    normalize: str = "none"
    evolve: EvolveSettings = field(default_factory=EvolveSettings)

    def __post_init__(self) -> None:
        if self.toolbox not in TOOLBOXES:
            raise UnknownNameError("toolbox", self.toolbox, TOOLBOXES)
        if self.final_selection not in FINAL_SELECTIONS:
            raise UnknownNameError("final selection", self.final_selection, FINAL_SELECTIONS)
        parse_select(self.select)  # a malformed --select fails before any work
        parse_parsimony(self.parsimony)
        if self.combine not in COMBINE:
            raise UnknownNameError("combine", self.combine, tuple(COMBINE))
        if self.normalize not in NORMALIZATIONS:
            raise UnknownNameError("normalization", self.normalize, NORMALIZATIONS)
        check_ranges(self, "search")

    def context(self) -> dict:
        """What of the setup a run's checkpoint records besides its `EvolveSettings`."""
        context = {"toolbox": self.toolbox, "rps": self.rps, "n_unary": self.n_unary, "max_height": self.max_height}
        parsimony = canonical_parsimony(self.parsimony)
        if parsimony != canonical_parsimony(SearchSetup.parsimony):
            context["parsimony"] = parsimony  # absent by default: earlier checkpoints resume as they were
        if self.combine != SearchSetup.combine:
            context["combine"] = self.combine
        if self.normalize != SearchSetup.normalize:
            context["normalize"] = self.normalize
        return context


def split_architectures(ids: list[str], holdout: float, seed: int) -> tuple[list[str], list[str]]:
    """(search part, held-out part), shuffled with `seed`; the held-out part is never searched."""
    order = list(ids)
    random.Random(seed).shuffle(order)
    n_hold = int(round(holdout * len(order)))
    if n_hold >= len(order) or (holdout > 0 and n_hold == 0):
        raise LPZeroError(f"--holdout {holdout} leaves no architectures on one side of {len(order)}")
    return sorted(order[n_hold:], key=ids.index), sorted(order[:n_hold], key=ids.index)


def search_sample(ids: list[str], setup: SearchSetup) -> tuple[list[str], list[str], list[str]]:
    """(search part, held-out part, fitness sample drawn from the search part) of a search's seed."""
    seed = setup.evolve.seed
    search_ids, held_ids = split_architectures(ids, setup.holdout, seed)
    if len(search_ids) < 2:
        raise LPZeroError(f"the search part has {len(search_ids)} architecture(s); fitness needs at least 2 "
                          "(more architectures or a smaller --holdout)")
    sample_ids = sorted(random.Random(seed + 1).sample(search_ids, min(setup.sample, len(search_ids))), key=ids.index)
    return search_ids, held_ids, sample_ids


def run_seed(seed: int, run: int) -> int:
    """Seed of run `run` of a search seeded `seed`; run 0 uses `seed` itself, so a one-run
    search is exactly the paper's Algorithm 1 with that seed."""
    return seed if run == 0 else random.Random(f"lpzero-run-{seed}-{run}").getrandbits(31)


def select_final(part_rho: Sequence[float | None], how: str) -> list[int]:
    """Order in which hall-of-fame trees (best sample fitness first) are offered as the found proxy.

    `part_rho[i]` is tree i's ρ, oriented as on the sample, on the whole search part (None
    if invalid there). "search" orders by it: fitness on 50 architectures cannot separate
    the hall of fame, and more search architectures can; "sample" keeps fitness order.
    """
    if how == "sample":
        return list(range(len(part_rho)))
    if how != "search":
        raise UnknownNameError("final selection", how, FINAL_SELECTIONS)
    return sorted(range(len(part_rho)), key=lambda i: math.inf if part_rho[i] is None else -part_rho[i])


def fingerprint(*arrays: object) -> str:
    """A short hash of arrays' contents (what a checkpoint remembers of its fitness data)."""
    digest = hashlib.sha1()
    for a in arrays:
        digest.update(np.ascontiguousarray(np.asarray(a, dtype=np.float64)).tobytes())
    return digest.hexdigest()[:16]


def ops_context(ops: OpTable) -> dict:
    """What a run's checkpoint records of its op table: nothing for the built-in one (its checkpoints
    say nothing), else the table's path, so a resume with another table is refused."""
    return {} if ops is OPS else {"ops": ops.path}


def best_baseline(cache: InputCache, ids: Sequence[str], truth: np.ndarray) -> dict | None:
    """The cached hand-designed proxy with the highest |ρ| on `ids`."""
    infos = [cache.info(a)["baselines"] for a in ids]
    names = set.intersection(*(set(i) for i in infos)) if infos else set()
    best = None
    for name in sorted(names):
        m = correlation(np.array([i[name] for i in infos]), truth)
        if m["spearman"] is not None and (best is None or abs(m["spearman"]) > abs(best["spearman"])):
            best = {"proxy": name, **m}
    return best


def hand_designed_scale(part: "SearchPart") -> dict:
    """The `--normalize hand-designed` scale of a benchmark: its best hand-designed proxy on the fitness
    sample, {"proxy", "spearman"} (LPZeroError when its cache holds none, or none ranks the sample)."""
    best = None if part.cache is None else best_baseline(part.cache, part.sample_ids, part.gt(part.sample_ids))
    if best is None or best["spearman"] == 0:
        raise LPZeroError(f"--normalize hand-designed: the cache of {part.name} holds no hand-designed proxy that "
                          f"ranks its fitness sample; compute them with `lpzero cache {part.name}` (or evolve "
                          "without --baselines none)")
    return {"proxy": best["proxy"], "spearman": best["spearman"]}


def check_rankable(name: str, truth: Mapping[str, float], sample_ids: list[str]) -> None:
    """LPZeroError unless the ground truth orders the architectures: a constant one (over the benchmark, or
    over the fitness sample) gives every proxy an undefined ρ, so a search could only end finding none."""
    values = set(truth.values())
    if len(values) == 1:
        raise LPZeroError(f"{name}: the ground truth is {values.pop():g} for all {len(truth)} architectures; no "
                          "proxy can rank them (a benchmark needs different ground-truth values)")
    if len({truth[a] for a in sample_ids}) == 1:
        raise LPZeroError(f"{name}: the ground truth of the {len(sample_ids)} architectures of the fitness sample "
                          "is one value; no proxy can rank them (a larger --sample or another --seed)")


@dataclass
class SearchPart:
    """One benchmark of a search: its architectures, ground truth, split, and where its inputs come from.

    `load(ids)` gives the inputs of `ids` as `Weighted` [N, L, K] (a cache's `load`); `record` is what
    a run's checkpoint keeps of the data (benchmark, cache, split); `bench` and `cache` are there for
    the report (None for inputs held in memory).
    """

    name: str
    ids: list[str]
    truth: Mapping[str, float]
    search_ids: list[str]
    held_ids: list[str]
    sample_ids: list[str]
    load: Callable[[list[str]], Mapping[str, Weighted]]
    record: dict = field(default_factory=dict)
    bench: Benchmark | None = None
    cache: InputCache | None = None

    def gt(self, some: Sequence[str]) -> np.ndarray:
        """Ground truth of the architectures `some`."""
        return np.array([self.truth[a] for a in some])

    @classmethod
    def of_cache(cls, bench: Benchmark, cache: InputCache, ids: list[str], setup: SearchSetup,
                 device: str = "cpu") -> "SearchPart":
        """A benchmark's architectures `ids` split with `setup`'s seed, read from `cache` on `device`;
        LPZeroError now, before any work, if one has no ground truth or the ground truth cannot rank them."""
        check_measured(bench, ids, "a search")
        truth = {a: bench.architecture(a).ground_truth for a in ids}
        search_ids, held_ids, sample_ids = search_sample(ids, setup)
        check_rankable(bench.name, truth, sample_ids)
        if len(sample_ids) < setup.sample:
            log.warning("--sample %d: the search part of %s has %d architectures; fitness is computed on all of "
                        "them", setup.sample, bench.name, len(search_ids))
        record = {"benchmark": cache.settings.benchmark, "cache": cache.settings.key(), "holdout": setup.holdout,
                  "sample": setup.sample, "sample_ids": sample_ids}
        return cls(bench.name, list(ids), truth, search_ids, held_ids, sample_ids, partial(cache.load, device=device),
                   record, bench, cache)

    @classmethod
    def in_memory(cls, inputs: Mapping[str, Weighted], truth: Sequence[float], name: str = "sample",
                  record: dict | None = None) -> "SearchPart":
        """Inputs of N architectures held in memory ([N, L, K] each), all of them the fitness sample."""
        ids = [str(i) for i in range(len(truth))]

        def load(some: list[str]) -> Mapping[str, Weighted]:
            if list(some) != ids:
                raise LPZeroError("inputs held in memory are loaded whole, as the fitness sample")
            return inputs

        return cls(name, ids, dict(zip(ids, map(float, truth))), ids, [], ids, load, dict(record or {}))


__all__ = ["FINAL_SELECTIONS", "SearchPart", "SearchSetup", "best_baseline", "check_rankable", "fingerprint",
           "hand_designed_scale", "ops_context", "run_seed", "search_sample", "select_final", "split_architectures"]
