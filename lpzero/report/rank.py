"""`lpzero rank`'s table and files: each proxy's ρ, τ and seconds per architecture.

`rank_row` turns a proxy's scores into its row; `write_rank` writes `rank.csv`, `rank.json`,
`scores.json` and a rank plot per proxy; `format_table` prints the table. Sign convention: ground
truth is oriented higher = better (for GPT-2, minus perplexity), so a proxy that ranks in
reverse shows a negative ρ. How the scores are computed is `lpzero.workflows.rank`.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from lpzero.files import atomic_write_json, atomic_write_text
from lpzero.search import correlation

from .plots import plot_ranks

#: the files `write_rank` writes (and one rank_<proxy>.png per proxy)
RANK_FILES = ("rank.csv", "rank.json", "scores.json")
RANK_FIELDS = ("proxy", "spearman", "kendall", "seconds_per_arch", "n", "invalid_reason")


@dataclass
class RankRow:
    """One proxy's line of the table; `invalid_reason` says why ρ is missing (constant or non-finite scores)."""

    proxy: str
    spearman: float | None
    kendall: float | None
    seconds_per_arch: float
    n: int
    scores: list[float]
    invalid_reason: str | None = None


def rank_row(name: str, scores: Sequence[float], truth: Sequence[float], seconds: Sequence[float]) -> RankRow:
    """A proxy's ρ, τ and mean seconds per architecture."""
    m = correlation(scores, truth)
    return RankRow(name, m["spearman"], m["kendall"], float(np.mean(seconds)) if len(seconds) else 0.0, m["n"],
                   list(map(float, scores)), m["invalid_reason"] if m["spearman"] is None else None)


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
            safe = r.proxy.replace(":", "_").replace("/", "_")
            plot_ranks(r.proxy, r.scores, truth, r.spearman, out / f"rank_{safe}.png")


def format_table(rows: list[RankRow], raw_metric: str) -> str:
    lines = [f"{'proxy':<24} {'spearman':>9} {'kendall':>9} {'s/arch':>8} {'n':>5}"]
    for r in rows:
        rho = "invalid" if r.spearman is None else f"{r.spearman:+.3f}"
        tau = "" if r.kendall is None else f"{r.kendall:+.3f}"
        why = f"  ({r.invalid_reason})" if r.spearman is None and r.invalid_reason else ""
        lines.append(f"{r.proxy:<24} {rho:>9} {tau:>9} {r.seconds_per_arch:>8.3f} {r.n:>5}{why}")
    lines.append(f"(ρ, τ against ground truth oriented higher = better; raw metric: {raw_metric})")
    return "\n".join(lines)
