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

from lpzero.benchmarks.inputs import extract_inputs
from lpzero.cache import CacheSettings
from lpzero.errors import LPZeroError
from lpzero.executors import Executor, LocalExecutor, TaskFailure
from lpzero.files import atomic_write_json, atomic_write_text
from lpzero.primitives import default_pset, parse_tree
from lpzero.proxies import BASELINES, ProxyContext, score_tree
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


def score_architecture(arch_id: str, settings: CacheSettings, proxies: Sequence[tuple[str, int]],
                       device: str) -> tuple[list[float], float]:
    """One architecture's scores under each (tree, orientation), from one forward/backward of its model."""
    bench = settings.open_benchmark()
    pset = default_pset()
    t = time.perf_counter()
    batch = bench.make_batch(settings.batch_seed, settings.batch_size, settings.seq_len).to(device)
    model = bench.build_model(arch_id, settings.model_seed, device)
    inputs = extract_inputs(bench, model, batch)
    del model
    scores = [orientation * score_tree(parse_tree(tree, pset), inputs, device, pset) for tree, orientation in proxies]
    return scores, time.perf_counter() - t


def pass_free_baselines(arch_id: str, settings: CacheSettings, names: Sequence[str],
                        device: str) -> tuple[list[float], list[float]]:
    """(values, seconds) of baselines that need no forward or backward pass (parameter counts)."""
    bench = settings.open_benchmark()
    ctx = ProxyContext(bench, arch_id, settings.model_seed, bench.make_batch(settings.batch_seed, 1, 1), device)
    timed = [ctx.timed(BASELINES[name].fn) for name in names]
    return [float(v) for v, _ in timed], [s for _, s in timed]


def rank_pass_free(names: Sequence[str], settings: CacheSettings, ids: Sequence[str], device: str,
                   executor: Executor | None = None) -> tuple[list[list[float]], list[list[float]]]:
    """Values and seconds of pass-free baselines per name (in `ids` order), computed without the cache."""
    results = dict((executor or LocalExecutor()).imap_unordered(pass_free_baselines, list(ids), settings, list(names),
                                                                device))
    failed = [r for r in results.values() if isinstance(r, TaskFailure)]
    if failed:
        raise LPZeroError(f"{failed[0].item}: {failed[0].error}")
    return ([[results[a][0][i] for a in ids] for i in range(len(names))],
            [[results[a][1][i] for a in ids] for i in range(len(names))])


def score_found_exactly(found: Sequence[dict], settings: CacheSettings, ids: Sequence[str], device: str,
                        executor: Executor | None = None, progress: Callable[[str], None] | None = None
                        ) -> tuple[list[list[float]], list[float]]:
    """Scores of saved proxies (`best.json` records) from full (unsampled) inputs, and seconds per architecture.

    Each architecture's model is built and run forward and backward once, for all the proxies,
    on `executor` (default: this process). Returns one list of scores per proxy, in `ids` order.
    """
    proxies = [(best["tree"], best.get("orientation", 1)) for best in found]
    by_arch: dict[str, tuple[list[float], float]] = {}
    failures = []
    for arch_id, result in (executor or LocalExecutor()).imap_unordered(score_architecture, list(ids), settings,
                                                                        proxies, device):
        if isinstance(result, TaskFailure):
            failures.append(result)
        else:
            by_arch[arch_id] = result
        if progress:
            progress(arch_id)
    if failures:
        named = "; ".join(f"{f.item}: {f.error}" for f in failures[:5])
        raise LPZeroError(f"scoring failed on {len(failures)} of {len(ids)} architecture(s): {named}")
    scores = [[by_arch[a][0][i] for a in ids] for i in range(len(found))]
    return scores, [by_arch[a][1] for a in ids]


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
