"""Pareto sets, the pick of a search, picks under a budget, regret and 2-D hypervolume (no model).

`pick_candidates` decides what `lpzero nas` reports: the Pareto front of the scored candidates
within the limits and the chosen one. Conventions: scores and ground truth are higher = better,
costs lower = better.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.stats import rankdata

from lpzero.benchmarks import SearchSpace

from .evaluate import COSTS, CandidateResult


def pareto_mask(score: Sequence[float], costs: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Which points are non-dominated when `score` is maximised and every column of `costs` minimised.

    `costs` is [N, M] (M >= 0). A point is dominated by one at least as good in every objective
    and better in one; equal points do not dominate each other, so both stay on the front.
    """
    s = np.asarray(score, dtype=np.float64)
    c = np.asarray(costs, dtype=np.float64).reshape(len(s), -1)
    # one matrix: maximise all columns
    v = np.column_stack([s, -c])
    n = len(v)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        at_least = np.all(v >= v[i], axis=1)
        better = np.any(v > v[i], axis=1)
        if np.any(at_least & better):
            keep[i] = False
    return keep


def pick_within(score: Sequence[float], cost: Sequence[float], budget: float) -> int | None:
    """Index of the highest score among points with cost <= budget (ties: the cheaper, then the first); None if none fits."""
    s, c = np.asarray(score, dtype=np.float64), np.asarray(cost, dtype=np.float64)
    fits = np.flatnonzero((c <= budget) & np.isfinite(s))
    if not len(fits):
        return None
    order = sorted(fits, key=lambda i: (-s[i], c[i], i))
    return int(order[0])


def hypervolume_2d(truth: Sequence[float], cost: Sequence[float], ref_truth: float, ref_cost: float) -> float:
    """Area dominated by the points (truth maximised, cost minimised) and bounded by the reference point.

    Points no better than the reference in either objective add nothing.
    """
    t, c = np.asarray(truth, dtype=np.float64), np.asarray(cost, dtype=np.float64)
    inside = (t > ref_truth) & (c < ref_cost)
    t, c = t[inside], c[inside]
    if not len(t):
        return 0.0
    order = np.argsort(c, kind="stable")
    t, c = t[order], c[order]
    area, best = 0.0, ref_truth
    bounds = np.append(c[1:], ref_cost)
    for ti, lo, hi in zip(t, c, bounds):
        best = max(best, ti)
        area += (best - ref_truth) * (hi - lo)
    return float(area)


def front_hypervolume_ratio(proxy_score: Sequence[float], truth: Sequence[float], cost: Sequence[float]) -> float:
    """Hypervolume over (truth, cost) of the proxy's Pareto set over (proxy score, cost), as a fraction
    of the true front's. Reference point: the worst truth and the largest cost of all points."""
    t, c = np.asarray(truth, dtype=np.float64), np.asarray(cost, dtype=np.float64)
    ref_truth, ref_cost = float(t.min()), float(c.max())
    proxy_front = pareto_mask(proxy_score, c[:, None])
    true_front = pareto_mask(t, c[:, None])
    whole = hypervolume_2d(t[true_front], c[true_front], ref_truth, ref_cost)
    if whole == 0:
        return 1.0
    return hypervolume_2d(t[proxy_front], c[proxy_front], ref_truth, ref_cost) / whole


def budget_regret(proxy_score: Sequence[float], truth: Sequence[float], cost: Sequence[float],
                  budget: float) -> dict:
    """The proxy's pick within `budget`: its ground truth, the best within budget, and the regret (>= 0)."""
    t = np.asarray(truth, dtype=np.float64)
    pick = pick_within(proxy_score, cost, budget)
    best = pick_within(t, cost, budget)
    if pick is None or best is None:
        return {"pick": None, "pick_truth": None, "best": None, "best_truth": None, "regret": None}
    return {"pick": pick, "pick_truth": float(t[pick]), "best": best, "best_truth": float(t[best]),
            "regret": float(t[best] - t[pick])}


@dataclass
class Candidate:
    """One scored candidate of a search: its key, description, config, evaluation and ground truth (where
    the space knows it), and what the pick decided about it (`on_front`, `chosen`)."""

    key: str
    architecture: str
    config: dict
    result: CandidateResult
    ground_truth: float | None = None
    on_front: bool = False
    chosen: bool = False

    @property
    def score(self) -> float | None:
        return self.result.score

    @property
    def valid(self) -> bool:
        """Within the limits, with a valid score: what the front and the pick are made of."""
        return self.result.valid

    def cost(self, name: str) -> float | None:
        return self.result.cost(name)

    def row(self) -> dict:
        """The candidate as a table row (candidates.csv, pareto.csv, summary.json)."""
        r = self.result
        return {"key": self.key, "architecture": self.architecture, "config": self.config, "score": r.score,
                **{c: r.cost(c) for c in COSTS}, "feasible": bool(r.feasible), "violation": r.violation,
                "error": r.error, "ground_truth": self.ground_truth, "seconds": round(sum(r.seconds.values()), 4),
                "on_front": self.on_front, "chosen": self.chosen}


@dataclass
class Pick:
    """What a search decided: every scored candidate, those within the limits with a valid score, the Pareto
    front (by the first cost, then the score, highest first) and the chosen one (the highest score within
    the limits; ties: the lower first cost, then the key; None if no candidate is valid)."""

    candidates: list[Candidate]
    valid: list[Candidate]
    front: list[Candidate]
    chosen: Candidate | None


def candidates_of(space: SearchSpace, memo: dict[str, CandidateResult]) -> list[Candidate]:
    """A `Candidate` per scored key (in scoring order), nothing decided yet."""
    found = []
    for key, result in memo.items():
        config = space.config(key)
        found.append(Candidate(key, space.describe(config), config, result, space.ground_truth(config)))
    return found


def pick_candidates(candidates: list[Candidate], costs: Sequence[str]) -> Pick:
    """The front (score up, `costs` down) of the valid candidates and the chosen one; marks both on them."""
    costs = list(costs)
    valid = [c for c in candidates if c.valid]
    chosen = None
    if valid:
        mask = pareto_mask([c.score for c in valid], [[c.cost(k) for k in costs] for c in valid])
        for c, m in zip(valid, mask):
            c.on_front = bool(m)
        chosen = min(valid, key=lambda c: (-c.score, c.cost(costs[0]), c.key))
        chosen.chosen = True
    front = sorted((c for c in valid if c.on_front), key=lambda c: (c.cost(costs[0]), -c.score))
    return Pick(candidates, valid, front, chosen)


def tabular_figures(picked: Pick, cost: str) -> dict:
    """The pick against the ground truth: regret within the limits, its rank, the front's hypervolume ratio.

    Only candidates with a ground truth count (a LoNAS space measured a few hundred of its sub-networks).
    """
    feasible = [c for c in picked.candidates if c.result.feasible and c.ground_truth is not None]
    valid = [c for c in picked.valid if c.ground_truth is not None]
    chosen = picked.chosen
    best = max(feasible, key=lambda c: c.ground_truth)
    truth = np.array([c.ground_truth for c in feasible])
    rank = int(len(feasible) - rankdata(truth, method="max")[feasible.index(chosen)] + 1)
    return {"pick_truth": chosen.ground_truth, "best": best.key, "best_truth": best.ground_truth,
            "regret": best.ground_truth - chosen.ground_truth, "pick_rank": rank, "feasible": len(feasible),
            "hypervolume_ratio": front_hypervolume_ratio([c.score for c in valid], [c.ground_truth for c in valid],
                                                         [c.cost(cost) for c in valid])}
