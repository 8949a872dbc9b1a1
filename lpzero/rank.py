"""`lpzero rank`: how well each proxy ranks a benchmark's architectures.

Hand-designed proxies are read from the cache (computed once per architecture by
`lpzero cache`); a found proxy (`best.json`) is scored exactly, from full inputs
of freshly built models. Sign convention: ground truth is oriented higher = better
(for GPT-2, minus perplexity), so a proxy that ranks in reverse shows a negative ρ.
"""
from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from benchmarks import Benchmark
from benchmarks.inputs import extract_inputs

from .cache import CacheSettings, full_weighted
from .fitness import spearman_fitness

RANK_FIELDS = ("proxy", "spearman", "kendall", "seconds_per_arch", "n")


@dataclass
class RankRow:
    proxy: str
    spearman: float | None
    kendall: float | None
    seconds_per_arch: float
    n: int
    scores: list[float]


def rank_row(name: str, scores: Sequence[float], truth: Sequence[float], seconds: Sequence[float]) -> RankRow:
    ev = spearman_fitness(scores, truth, with_kendall=True)
    return RankRow(name, ev.spearman, ev.kendall, float(np.mean(seconds)) if len(seconds) else 0.0, len(scores),
                   list(map(float, scores)))


def score_best_exactly(best: dict, bench: Benchmark, settings: CacheSettings, ids: Sequence[str], device: str,
                       progress: Callable[[str], None] | None = None) -> tuple[list[float], list[float]]:
    """Scores of a saved proxy from full (unsampled) inputs, and seconds per architecture."""
    from primitives import INPUT_SYMBOLS

    from .experiment import parse_tree, tree_inputs
    from deap import gp

    tree, pset = parse_tree(best["tree"])
    func = gp.compile(tree, pset)
    batch = bench.make_batch(settings.batch_seed, settings.batch_size, settings.seq_len).to(device)
    scores, seconds = [], []
    for a in ids:
        t = time.perf_counter()
        model = bench.build_model(a, settings.model_seed, device)
        inputs = full_weighted(extract_inputs(bench, model, batch), device, tree_inputs(tree))
        del model
        scores.append(best.get("orientation", 1) * float(func(*[inputs[s] for s in INPUT_SYMBOLS])[0]))
        seconds.append(time.perf_counter() - t)
        if progress:
            progress(a)
    return scores, seconds


def write_rank(rows: list[RankRow], ids: Sequence[str], truth: Sequence[float], out: Path, plots: bool = True) -> None:
    out.mkdir(parents=True, exist_ok=True)
    records = [{k: getattr(r, k) for k in RANK_FIELDS} for r in rows]
    with open(out / "rank.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=RANK_FIELDS)
        w.writeheader()
        w.writerows(records)
    (out / "rank.json").write_text(json.dumps(records, indent=1))
    (out / "scores.json").write_text(json.dumps({"ids": list(ids), "ground_truth": list(map(float, truth)),
                                                 "scores": {r.proxy: r.scores for r in rows}}))
    if plots:
        for r in rows:
            plot_ranks(r, truth, out / f"rank_{r.proxy}.png")


def plot_ranks(row: RankRow, truth: Sequence[float], path: Path) -> None:
    """Proxy rank against ground-truth rank (the paper's Figures 4 and 8)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import rankdata

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(rankdata(truth), rankdata(row.scores), s=6)
    rho = "n/a" if row.spearman is None else f"{row.spearman:+.3f}"
    ax.set_title(f"{row.proxy}  (ρ = {rho})")
    ax.set_xlabel("ground-truth rank (higher = better)")
    ax.set_ylabel("proxy rank")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def format_table(rows: list[RankRow], raw_metric: str) -> str:
    lines = [f"{'proxy':<24} {'spearman':>9} {'kendall':>9} {'s/arch':>8} {'n':>5}"]
    for r in rows:
        rho = "invalid" if r.spearman is None else f"{r.spearman:+.3f}"
        tau = "" if r.kendall is None else f"{r.kendall:+.3f}"
        lines.append(f"{r.proxy:<24} {rho:>9} {tau:>9} {r.seconds_per_arch:>8.3f} {r.n:>5}")
    lines.append(f"(ρ, τ against ground truth oriented higher = better; raw metric: {raw_metric})")
    return "\n".join(lines)
