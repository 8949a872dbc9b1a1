"""Pareto sets, picks under a budget, regret and 2-D hypervolume (plain numpy, no model).

Conventions: scores and ground truth are higher = better, costs lower = better.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


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
