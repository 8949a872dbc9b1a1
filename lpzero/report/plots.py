"""The figures lpzero writes: evolution curves and proxy-vs-ground-truth rank plots.

Figures are made in one place (`_figure`) with matplotlib's object-oriented API
(`matplotlib.figure.Figure`), which needs no display and leaves pyplot's global
state (a notebook's backend) alone.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from matplotlib.figure import Figure
from scipy.stats import rankdata

from lpzero.files import atomic_write


@contextlib.contextmanager
def _figure(path: Path, size: tuple[float, float], dpi: int = 120) -> Iterator:
    """A figure with one axes, saved to `path` (atomically) and closed on exit."""
    fig = Figure(figsize=size)
    ax = fig.subplots()
    yield ax
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png"))


def plot_evolution(logs: list[list[dict]], path: Path) -> None:
    """Best and median fitness per iteration, one pair of lines per run."""
    with _figure(path, (6, 3.5)) as ax:
        for run, log in enumerate(logs):
            it = [r["iteration"] for r in log]
            ax.plot(it, [r["best"] for r in log], color="C0", alpha=0.7, lw=1, label="best |ρ|" if run == 0 else None)
            ax.plot(it, [r["median"] for r in log], color="C1", alpha=0.7, lw=1,
                    label="median |ρ|" if run == 0 else None)
        if len(logs) > 1:
            ax.set_title(f"{len(logs)} runs")
        ax.set_xlabel("iteration")
        ax.set_ylabel("fitness (|Spearman ρ| on the search sample)")
        ax.legend()


def plot_ranks(name: str, scores: Sequence[float], truth: Sequence[float], spearman: float | None, path: Path) -> None:
    """Proxy rank against ground-truth rank (the paper's Figures 4 and 8)."""
    with _figure(path, (4, 4), dpi=100) as ax:
        ax.scatter(rankdata(truth), rankdata(scores), s=6)
        rho = "n/a" if spearman is None else f"{spearman:+.3f}"
        ax.set_title(f"{name}  (ρ = {rho})")
        ax.set_xlabel("ground-truth rank (higher = better)")
        ax.set_ylabel("proxy rank")


def plot_mean_curves(curves: dict[str, list[list[float]]], path: Path, title: str) -> None:
    """The mean best fitness per iteration of each variant's searches (the ablation figures)."""
    with _figure(path, (6, 3.5)) as ax:
        for label, runs in curves.items():
            arr = np.array(runs)
            ax.plot(np.arange(1, arr.shape[1] + 1), arr.mean(0), label=f"{label} (mean of {len(runs)})")
        ax.set_xlabel("iteration")
        ax.set_ylabel("best |ρ| on the search sample")
        ax.set_title(title)
        ax.legend()


#: the figure of a search's Pareto front (`plot_pareto`)
PARETO_PLOT = "pareto_formulas.png"


def plot_pareto(front: Sequence[dict], chosen_tree: str, path: Path) -> None:
    """Complexity against search-part ρ of the Pareto front's trees (`pareto_front.json`), the
    found proxy circled; held-out figures are not drawn, as they take no part in the choice."""
    points = [(e["complexity"], e["search_part"]["spearman"], e["tree"] == chosen_tree) for e in front]
    with _figure(path, (6, 3.5)) as ax:
        if points:
            x, y, _ = zip(*points)
            ax.step(x, y, where="post", color="C0", lw=1)
            ax.scatter(x, y, color="C0", s=14, zorder=3, label="best tree at its complexity")
        for c, rho, chosen in points:
            if chosen:
                ax.scatter([c], [rho], s=90, facecolors="none", edgecolors="C3", zorder=4, label="found proxy")
        ax.set_xlabel("complexity (weighted nodes)")
        ax.set_ylabel("Spearman ρ on the search part")
        ax.set_title("Pareto front")
        if points:
            ax.legend(loc="lower right")
