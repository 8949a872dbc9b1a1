"""`lpzero rank`: how well each proxy ranks a benchmark's architectures.

Hand-designed proxies are read from the cache (computed once per architecture by
`lpzero cache`); a found proxy (`best.json`) is scored exactly, from the full inputs
of freshly built models. Sign convention: ground truth is oriented higher = better
(for GPT-2, minus perplexity), so a proxy that ranks in reverse shows a negative ρ.
"""
from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from lpzero.benchmarks import Benchmark
from lpzero.benchmarks.inputs import extract_inputs
from lpzero.cache import CacheSettings
from lpzero.files import atomic_write_json, atomic_write_text
from lpzero.primitives import default_pset, parse_tree
from lpzero.proxies import score_tree
from lpzero.search import correlation

from .plots import plot_ranks

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
    m = correlation(scores, truth)
    return RankRow(name, m["spearman"], m["kendall"], float(np.mean(seconds)) if len(seconds) else 0.0, m["n"],
                   list(map(float, scores)))


def score_found_exactly(found: Sequence[dict], bench: Benchmark, settings: CacheSettings, ids: Sequence[str],
                        device: str, progress: Callable[[str], None] | None = None
                        ) -> tuple[list[list[float]], list[float]]:
    """Scores of saved proxies (`best.json` records) from full (unsampled) inputs, and seconds per architecture.

    Each architecture's model is built and run forward and backward once, for all the proxies.
    Returns one list of scores per proxy.
    """
    pset = default_pset()
    trees = [parse_tree(best["tree"], pset) for best in found]
    batch = bench.make_batch(settings.batch_seed, settings.batch_size, settings.seq_len).to(device)
    scores: list[list[float]] = [[] for _ in found]
    seconds = []
    for a in ids:
        t = time.perf_counter()
        model = bench.build_model(a, settings.model_seed, device)
        inputs = extract_inputs(bench, model, batch)
        del model
        for best, tree, out in zip(found, trees, scores):
            out.append(best.get("orientation", 1) * score_tree(tree, inputs, device, pset))
        seconds.append(time.perf_counter() - t)
        if progress:
            progress(a)
    return scores, seconds


def write_rank(rows: list[RankRow], ids: Sequence[str], truth: Sequence[float], out: Path, plots: bool = True) -> None:
    """rank.csv, rank.json, scores.json (and a rank plot per proxy) in `out`."""
    records = [{k: getattr(r, k) for k in RANK_FIELDS} for r in rows]
    text = io.StringIO()
    w = csv.DictWriter(text, fieldnames=RANK_FIELDS)
    w.writeheader()
    w.writerows(records)
    atomic_write_text(out / "rank.csv", text.getvalue())
    atomic_write_json(out / "rank.json", records)
    atomic_write_json(out / "scores.json", {"ids": list(ids), "ground_truth": list(map(float, truth)),
                                            "scores": {r.proxy: r.scores for r in rows}}, indent=None)
    if plots:
        for r in rows:
            plot_ranks(r.proxy, r.scores, truth, r.spearman, out / f"rank_{r.proxy}.png")


def format_table(rows: list[RankRow], raw_metric: str) -> str:
    lines = [f"{'proxy':<24} {'spearman':>9} {'kendall':>9} {'s/arch':>8} {'n':>5}"]
    for r in rows:
        rho = "invalid" if r.spearman is None else f"{r.spearman:+.3f}"
        tau = "" if r.kendall is None else f"{r.kendall:+.3f}"
        lines.append(f"{r.proxy:<24} {rho:>9} {tau:>9} {r.seconds_per_arch:>8.3f} {r.n:>5}")
    lines.append(f"(ρ, τ against ground truth oriented higher = better; raw metric: {raw_metric})")
    return "\n".join(lines)
