"""Fitness of a proxy tree: Spearman ρ of its scores against ground truth.

This module is the one place that decides when a proxy is invalid (scores NaN,
infinite or constant over the architectures) and what an invalid proxy is worth:
`INVALID_FITNESS`, below every legal ρ (-1 is a legal ρ, so it is not used).

Fitness is |ρ|: a proxy that ranks in exact reverse is as informative as one that
ranks in order, and its sign is kept (`Evaluation.spearman`) so the found proxy is
reported and applied with its orientation. Why a proxy is invalid is a value
(`Invalid`), never a message to parse.
"""
from __future__ import annotations

import enum
import math
import statistics
import warnings
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
from deap import gp
from scipy import stats

from lpzero.errors import LPZeroError
from lpzero.primitives import INPUT_SYMBOLS, Weighted, compile_tree

#: fitness of an invalid proxy: worse than any |ρ|
INVALID_FITNESS = float("-inf")
#: scores whose spread is below this fraction of their magnitude differ only by float32
#: rounding (e.g. the mean of an attention map, exactly 1/T), so they count as constant
CONSTANT_RTOL = 1e-6


class Invalid(str, enum.Enum):
    """Why a proxy has no fitness."""

    NON_FINITE = "non-finite score"
    CONSTANT = "constant scores"
    UNDEFINED = "undefined Spearman correlation"
    #: an evaluate function registered by a script returned the invalid fitness without a reason
    UNSPECIFIED = "invalid"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Evaluation:
    """What one proxy achieved on one set of architectures.

    Iterating it yields DEAP's one-element fitness tuple, so it is what `toolbox.evaluate`
    returns and `ind.fitness.values = toolbox.evaluate(ind)` works as in any DEAP loop.
    """

    fitness: float
    spearman: float | None = None
    kendall: float | None = None
    reason: Invalid | None = None
    #: what the reason is about, e.g. "on 3 of 50 architectures"
    detail: str = ""
    #: the architectures' order under the oriented proxy (dense ranks as bytes): proxies with
    #: equal `ranking` are the same proxy as far as this set of architectures can tell
    ranking: bytes | None = field(default=None, repr=False, compare=False)
    #: a search on several benchmarks (`CombinedEvaluator`): each benchmark's own Evaluation, by name
    parts: Mapping[str, "Evaluation"] | None = field(default=None, repr=False, compare=False)

    def __iter__(self) -> Iterator[float]:
        return iter((self.fitness,))

    def __len__(self) -> int:
        return 1

    @property
    def valid(self) -> bool:
        return self.reason is None

    @property
    def orientation(self) -> int:
        """+1 if higher proxy scores mean better architectures, -1 if lower do."""
        return -1 if (self.spearman or 0.0) < 0 else 1

    def describe(self) -> str:
        """The reason as a sentence ("" for a valid proxy)."""
        return "" if self.reason is None else f"{self.reason} {self.detail}".strip()

    @classmethod
    def of(cls, result: "Evaluation | Sequence[float]") -> "Evaluation":
        """`result` of any evaluate function as an Evaluation (a plain DEAP tuple has no ranking)."""
        if isinstance(result, Evaluation):
            return result
        fitness = float(result[0])
        if fitness == INVALID_FITNESS or not math.isfinite(fitness):
            return invalid(Invalid.UNSPECIFIED)
        return cls(fitness)


def is_valid_fitness(fitness: Sequence[float]) -> bool:
    """Whether a DEAP fitness tuple belongs to a valid proxy."""
    return fitness[0] != INVALID_FITNESS


def invalid(reason: Invalid, detail: str = "") -> Evaluation:
    return Evaluation(INVALID_FITNESS, reason=reason, detail=detail)


def spearman_fitness(scores: Sequence[float] | np.ndarray, truth: Sequence[float] | np.ndarray,
                     with_kendall: bool = False) -> Evaluation:
    """Rank agreement of `scores` with `truth` (higher truth = better), or the reason it has none."""
    scores = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if scores.shape != truth.shape:
        raise LPZeroError(f"{scores.size} scores for {truth.size} ground-truth values")
    bad = int((~np.isfinite(scores)).sum())
    if bad:
        return invalid(Invalid.NON_FINITE, f"on {bad} of {len(scores)} architectures")
    if len(scores) < 2 or np.ptp(scores) <= CONSTANT_RTOL * np.abs(scores).max():
        return invalid(Invalid.CONSTANT)
    if not np.isfinite(truth).all() or np.ptp(truth) == 0:
        return invalid(Invalid.UNDEFINED, "(the ground truth is constant or not finite)")
    # scipy warns (ConstantInputWarning, RuntimeWarning) where a correlation is undefined: here that is an
    # `Invalid` reason, never a warning that reaches the user
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = float(stats.spearmanr(scores, truth).statistic)
        if not math.isfinite(rho):
            return invalid(Invalid.UNDEFINED)
        tau = float(stats.kendalltau(scores, truth).statistic) if with_kendall else None
        ranking = stats.rankdata(np.copysign(1.0, rho) * scores, method="dense").astype(np.int32).tobytes()
    return Evaluation(abs(rho), spearman=rho, kendall=tau, ranking=ranking)


def correlation(scores: Sequence[float] | np.ndarray, truth: Sequence[float] | np.ndarray) -> dict:
    """ρ and τ of `scores` against `truth` as a record for result files (None where invalid)."""
    ev = spearman_fitness(scores, truth, with_kendall=True)
    return {"spearman": ev.spearman, "kendall": ev.kendall, "n": int(len(truth)),
            "invalid_reason": ev.describe() or None}


class FitnessEvaluator:
    """Scores trees on a fixed set of architectures from their cached inputs.

    `inputs` maps each input symbol to a `Weighted` of shape [N, L, K] for the N
    architectures whose ground truth is `truth`. Results are memoised by the tree's
    text, so a candidate the search meets again costs nothing.
    """

    def __init__(self, pset: gp.PrimitiveSetTyped, inputs: Mapping[str, Weighted], truth: Sequence[float]):
        missing = [s for s in INPUT_SYMBOLS if s not in inputs]
        if missing:
            raise LPZeroError(f"inputs lack {', '.join(missing)}")
        self.pset = pset
        self.inputs = {s: inputs[s] for s in INPUT_SYMBOLS}
        self.args = list(self.inputs.values())
        self.truth = np.asarray(truth, dtype=np.float64)
        self.memo: dict[str, Evaluation] = {}

    def __getstate__(self) -> dict:
        # a process pool's workers get the inputs, not the parent's memo
        return {**self.__dict__, "memo": {}}

    def scores(self, tree: gp.PrimitiveTree) -> np.ndarray:
        """The tree's score of each architecture (`lpzero.primitives.compile_tree`: the one evaluator)."""
        with torch.no_grad():
            out = compile_tree(tree, self.pset)(*self.args)
        return out.detach().double().cpu().numpy()

    def __call__(self, tree: gp.PrimitiveTree) -> Evaluation:
        """The tree's `Evaluation` on these architectures, memoised by its text; DEAP's evaluate
        convention (the result iterates as a one-element fitness tuple)."""
        key = str(tree)
        found = self.memo.get(key)
        if found is None:
            found = self.memo[key] = spearman_fitness(self.scores(tree), self.truth)
        return found

    details = __call__


#: how a search on several benchmarks combines their |ρ| into one fitness (`--combine`)
COMBINE = {"min": min, "mean": statistics.fmean}
#: how a search on several benchmarks scales each |ρ| before combining them (`--normalize`;
#: `lpzero.search.protocol.SearchSetup.normalize`)
NORMALIZATIONS = ("none", "hand-designed")


class CombinedEvaluator:
    """Scores trees on several benchmarks at once (`lpzero evolve --benchmark a,b`).

    Each benchmark has its own `FitnessEvaluator` (its own cached inputs and ground truth);
    fitness is `combine` ("min" or "mean") of their |ρ|, each divided by its benchmark's `scales`
    entry (default 1: `--normalize hand-designed` gives the best hand-designed |ρ|). Each benchmark keeps its own
    orientation (`Evaluation.parts`); the combined Evaluation's `spearman` is the combined
    |ρ| signed with the first benchmark's orientation, which is the formula's. A tree invalid
    on any benchmark is invalid, its detail naming the benchmark.
    """

    def __init__(self, evaluators: Mapping[str, FitnessEvaluator], combine: str = "min",
                 scales: Mapping[str, float] | None = None):
        if combine not in COMBINE:
            raise LPZeroError(f"unknown combine {combine!r} (one of: {', '.join(COMBINE)})")
        if not evaluators:
            raise LPZeroError("a combined fitness needs at least one benchmark")
        self.evaluators = dict(evaluators)
        self.combine = combine
        self.scales = {name: 1.0 for name in self.evaluators} | dict(scales or {})
        if any(not (math.isfinite(s) and s > 0) for s in self.scales.values()):
            raise LPZeroError(f"fitness scales must be finite and positive: {self.scales}")
        self.pset = next(iter(self.evaluators.values())).pset

    def __call__(self, tree: gp.PrimitiveTree) -> Evaluation:
        """DEAP's evaluate convention, as `FitnessEvaluator`'s."""
        # each benchmark's evaluator memoises its own scores; combining them is cheap
        return combine_evaluations({name: ev(tree) for name, ev in self.evaluators.items()}, self.combine,
                                   self.scales)

    details = __call__


def combine_evaluations(parts: Mapping[str, Evaluation], combine: str,
                        scales: Mapping[str, float] | None = None) -> Evaluation:
    """One Evaluation of several benchmarks' (see `CombinedEvaluator`; `scales`: each |ρ|'s divisor)."""
    for name, ev in parts.items():
        if not ev.valid:
            return Evaluation(INVALID_FITNESS, reason=ev.reason, detail=f"on {name}" + (f" ({ev.detail})" if ev.detail else ""),
                              parts=parts)
    first = next(iter(parts.values()))
    scales = scales or {}
    fitness = float(COMBINE[combine]([ev.fitness / scales.get(name, 1.0) for name, ev in parts.items()]))
    # the benchmarks' samples have fixed sizes, so the joined rankings identify a proxy on all of them
    return Evaluation(fitness, spearman=first.orientation * fitness,
                      ranking=b"|".join(ev.ranking or b"" for ev in parts.values()), parts=parts)
