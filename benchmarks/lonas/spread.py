"""What a LoNAS ground truth's spread is made of: R² of additive models of log perplexity.

An analysis of a finished `lonas-mini` build (not one of its stages): `record_spread`
adds it to the build's `ground_truth.json` under "spread", once; `explained_spread`
computes it for any space and ground truth.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lpzero.files import atomic_write_json

from ..base import BenchmarkError, read_json
from .benchmark import GROUND_TRUTH_FILE, SPACE_FILE
from .space import Choice, Group, LoNASSpace

#: the ground truth's key the spread is stored under
SPREAD_KEY = "spread"
#: ids of the build's random sub-networks; the spread is over these (max, heuristic and min are picked, not drawn)
RANDOM_PREFIX = "sub"


def explained_spread(space: LoNASSpace, truth: dict[str, tuple[Choice, float]]) -> dict:
    """How much of the spread of log-perplexity the groups explain, as R² of additive models.

    `truth` is id -> (choice, perplexity). `groups`: each group alone (its between-choice
    sum of squares over the total); `families`: the additive model of a family's groups
    (e.g. every layer's FFN width); `additive`: all groups together; `residual` = 1 -
    additive (interactions and noise). Shares of single groups can sum to a little more
    than the family's: in a finite sample the groups' choices are not exactly independent.
    """
    if len(truth) < 2:
        return {"groups": {}, "families": {}, "additive": float("nan"), "residual": float("nan")}
    values = np.log([ppl for _, ppl in truth.values()])
    choices = [choice for choice, _ in truth.values()]

    def r2(groups: list[Group]) -> float:
        columns = [np.ones(len(values))]
        for g in groups:
            picks = np.array([c[g.name] for c in choices])
            columns += [(picks == v).astype(float) for v in g.choices[1:]]
        design = np.stack(columns, axis=1)
        fitted = design @ np.linalg.lstsq(design, values, rcond=None)[0]
        total = float(((values - values.mean()) ** 2).sum())
        return 1.0 - float(((values - fitted) ** 2).sum()) / total if total > 0 else 0.0

    families: dict[str, list[Group]] = {}
    for g in space.groups:
        families.setdefault(g.family, []).append(g)
    additive = r2(list(space.groups))
    return {"groups": {g.name: r2([g]) for g in space.groups},
            "families": {name: r2(groups) for name, groups in families.items()},
            "additive": additive, "residual": 1.0 - additive}


def record_spread(build_dir: str | os.PathLike) -> dict:
    """The spread of a built LoNAS directory's random sub-networks, added to its `ground_truth.json`.

    Idempotent: a ground truth that has it already is returned as it is and not rewritten
    (a resumed build leaves its files untouched). The key goes before "subnetworks", where
    the build wrote it before the analysis moved here.
    """
    folder = Path(build_dir)
    path = folder / GROUND_TRUTH_FILE
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("subnetworks"), dict):
        raise BenchmarkError(f"{path}: expected {{'subnetworks': {{id: {{'choice': ..., 'ppl': ...}}}}}}")
    if SPREAD_KEY in data:
        return data[SPREAD_KEY]
    space = LoNASSpace.from_json(read_json(folder / SPACE_FILE), str(folder / SPACE_FILE))
    truth = {k: (entry["choice"], entry["ppl"]) for k, entry in data["subnetworks"].items()
             if k.startswith(RANDOM_PREFIX)}
    spread = explained_spread(space, truth)
    out = {k: v for k, v in data.items() if k != "subnetworks"}
    out[SPREAD_KEY] = spread
    out["subnetworks"] = data["subnetworks"]
    atomic_write_json(path, out)
    return spread
