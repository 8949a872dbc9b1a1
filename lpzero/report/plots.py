"""The figures lpzero writes: evolution curves, the complexity front and proxy-vs-ground-truth rank plots.

Figures are made with matplotlib's object-oriented API (`matplotlib.figure.Figure`), which
needs no display and leaves pyplot's global state (a notebook's backend) alone. The figures of a
search are built by functions that return them (`evolution_figure`, `pareto_figure`), so what they
show can be checked without reading pixels, and written by `plot_evolution` and `plot_pareto`.
"""
from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Annotation
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Bbox
from scipy.stats import rankdata

from lpzero.files import atomic_write


def _save(fig: Figure, path: Path, dpi: int = 120) -> None:
    """`fig` written to `path` atomically, in the format its suffix names (png without one)."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png"))


@contextlib.contextmanager
def _figure(path: Path, size: tuple[float, float], dpi: int = 120) -> Iterator:
    """A figure with one axes, saved to `path` (atomically) and closed on exit."""
    fig = Figure(figsize=size)
    ax = fig.subplots()
    yield ax
    fig.tight_layout()
    _save(fig, path, dpi)


def _finite(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def _zoom(ax: Axes, values: Sequence[float], least: float = 0.01) -> None:
    """A y range around `values` alone, at least `least` high: the best fitness moves by hundredths
    near 1, which a range shared with the median (often 0.4 to 1) flattens into one line."""
    if not values:
        return
    lo, hi = min(values), max(values)
    pad = max(0.1 * (hi - lo), (least - (hi - lo)) / 2)
    ax.set_ylim(lo - pad, hi + pad)


def evolution_figure(logs: list[list[dict]]) -> Figure:
    """Best fitness per iteration (upper panel, its own range) over median fitness (lower panel), one
    colour per run; invalid fitness (-inf) is left out."""
    fig = Figure(figsize=(6, 4.5), layout="constrained")
    best_ax, median_ax = fig.subplots(2, 1, sharex=True)
    for run, log in enumerate(logs):
        it = [r["iteration"] for r in log]
        best_ax.plot(it, [r["best"] for r in log], color=f"C{run % 10}", lw=1)
        median_ax.plot(it, [r["median"] for r in log], color=f"C{run % 10}", lw=1, alpha=0.8)
    _zoom(best_ax, _finite(r["best"] for log in logs for r in log))
    if logs and not _finite(r["median"] for log in logs for r in log):
        median_ax.text(0.5, 0.5, "no finite median: most of the population was invalid throughout",
                       transform=median_ax.transAxes, ha="center", va="center", color="0.4")
    best_ax.set_ylabel("best |ρ|")
    median_ax.set_ylabel("median |ρ|")
    median_ax.set_xlabel("iteration")
    runs = f"{len(logs)} runs, one colour each" if len(logs) > 1 else "1 run"
    fig.suptitle(f"fitness: |Spearman ρ| on the search sample ({runs})", fontsize=10)
    return fig


def plot_evolution(logs: list[list[dict]], path: Path) -> None:
    """Best and median fitness per iteration, one pair of lines per run (`evolution_figure`)."""
    _save(evolution_figure(logs), path)


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
#: characters of a formula shown beside its point (the whole one is in pareto_front.json and report.md)
LABEL_CHARS = 36
#: where a point's label may go, nearest first: (offset in points, horizontal and vertical alignment). The
#: front rises to the right, so below-right and above-left of a point hold no other point; a label moved
#: away from its point (a crowded front) gets a leader line.
LABEL_SPOTS = tuple(spot for step in range(8) for spot in (
    ((5, -5 - 11 * step), "left", "top"), ((-5, 5 + 11 * step), "right", "bottom"),
    ((5, 5 + 11 * step), "left", "bottom"), ((-5, -5 - 11 * step), "right", "top")))
#: a label this far from its point (in points) is joined to it by a line
LEADER_FROM = 10


def shorten(formula: str, chars: int = LABEL_CHARS) -> str:
    """`formula` cut to `chars` characters, an ellipsis marking the cut."""
    return formula if len(formula) <= chars else formula[: chars - 1] + "…"


def _area(box: Bbox | None) -> float:
    return 0.0 if box is None else box.width * box.height


def _cost(box: Bbox, frame: Bbox, taken: Sequence[Bbox]) -> float:
    """How badly a label's `box` sits: its area outside the axes' `frame` and on each box in `taken`
    (one more per box touched, as a line has no area)."""
    cuts = [Bbox.intersection(box, other) for other in taken]
    return _area(box) - _area(Bbox.intersection(box, frame)) + sum(_area(c) + 1 for c in cuts if c is not None)


def _annotate(ax: Axes, xy: tuple[float, float], text: str, spot: tuple, leader: bool = False) -> Annotation:
    """`text` at `spot` (one of `LABEL_SPOTS`) from the point `xy`; with `leader`, a line joins them when
    they are apart."""
    offset, ha, va = spot
    far = leader and max(map(abs, offset)) > LEADER_FROM
    label = ax.annotate(text, xy, xytext=offset, textcoords="offset points", ha=ha, va=va, fontsize=7,
                        arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5"} if far else None,
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
    label.set_in_layout(False)  # inside the axes: the layout need not make room for it
    return label


def _label(ax: Axes, xy: tuple[float, float], text: str, taken: list[Bbox]) -> None:
    """`text` beside the point `xy`, at the first of `LABEL_SPOTS` inside the axes that covers nothing in
    `taken` (else where it sits least badly); its box joins `taken`."""
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    tried = []
    for spot in LABEL_SPOTS:
        label = _annotate(ax, xy, text, spot)  # no leader: its box is the text's alone
        box = label.get_window_extent(renderer)
        label.remove()
        tried.append((_cost(box, frame, taken), spot, box))
    _, spot, box = min(tried, key=lambda t: t[0])  # the first of equals: the order of LABEL_SPOTS
    _annotate(ax, xy, text, spot, leader=True)
    taken.append(box)


def _obstacles(ax: Axes, xs: Sequence[float], ys: Sequence[float]) -> list[Bbox]:
    """Display boxes of the points and of each straight piece of the step line between them."""
    points = ax.transData.transform(np.column_stack([xs, ys]))
    boxes = [Bbox.from_bounds(px - 4, py - 4, 8, 8) for px, py in points]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):  # "post" steps: across at y0, then up at x1
        boxes += [Bbox.from_extents(x0, y0 - 1, x1, y0 + 1), Bbox.from_extents(x1 - 1, y0, x1 + 1, y1)]
    return boxes


def pareto_figure(front: Sequence[dict], chosen_tree: str) -> Figure:
    """Complexity against search-part ρ of the front's trees (`pareto_front.json`), each labelled with its
    formula, the found proxy circled, the legend below the axes."""
    entries = sorted(front, key=lambda e: e["complexity"])
    xs = [e["complexity"] for e in entries]
    ys = [e["search_part"]["spearman"] for e in entries]
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)  # a renderer, to measure labels before the figure is saved
    ax = fig.subplots()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # complexity counts weighted nodes
    ax.set_xlabel("complexity (weighted nodes)")
    ax.set_ylabel("Spearman ρ on the search part")
    ax.set_title("Pareto front")
    if not entries:
        return fig
    ax.step(xs, ys, where="post", color="C0", lw=1)
    ax.scatter(xs, ys, color="C0", s=14, zorder=3, label="best tree at its complexity")
    for e, x, y in zip(entries, xs, ys):
        if e["tree"] == chosen_tree:
            ax.scatter([x], [y], s=90, facecolors="none", edgecolors="C3", zorder=4, label="found proxy")
    # room for the first and last labels, and at least two whole complexities in view: with fewer,
    # an integer locator falls back to fractional ticks
    pad = max(1.0, 0.12 * (xs[-1] - xs[0]))
    ax.set_xlim(xs[0] - pad, xs[-1] + pad)
    ax.margins(y=0.2)
    fig.legend(loc="outside lower center", ncols=2, frameon=False)
    fig.draw_without_rendering()  # the layout places the axes: labels are measured where they will be
    taken = _obstacles(ax, xs, ys)
    for e, x, y in zip(entries, xs, ys):
        _label(ax, (x, y), shorten(e.get("formula") or e["tree"]), taken)
    return fig


def plot_pareto(front: Sequence[dict], chosen_tree: str, path: Path) -> None:
    """The front's figure (`pareto_figure`); held-out figures are not drawn, as they take no part in the choice."""
    _save(pareto_figure(front, chosen_tree), path)
