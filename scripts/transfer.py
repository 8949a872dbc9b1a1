"""The transfer matrix: each benchmark's found proxy scored on every other benchmark's held-out half.

Rows are the found proxies (the `best.json` of a search on each benchmark), columns the target
benchmarks; each cell is the Spearman ρ of the row's formula, oriented as it was found, against the
target's ground truth on the target's held-out half (the split of the target's own search, so every
cell of a column ranks the same architectures). Scores are computed from the target's cache (the
samples the search's fitness reads, with the cache settings the target's search recorded), so the
matrix needs no model. Beside each column: the target's best hand-designed proxy on the same half (of
those its cache holds) and its simplest architecture descriptor (`scripts/descriptors.py`).
`--rows NAME=FOLDER` adds proxies that are rows only, e.g. one formula searched on several benchmarks
(each cell with that benchmark's own orientation where the search recorded one).
Writes `transfer.csv`, `transfer.md` (the table) and `transfer.png` (the heat map) to `--out`.

    python scripts/transfer.py --runs gpt2=runs/gpt2,flexibert=runs/flexibert,lonas-mini=runs/lonas-mini,\
transxl=runs/transxl --rows "all four=runs/multi" --cache-dir .lpzero_cache --out runs/transfer
"""
from __future__ import annotations

import csv
from dataclasses import fields
from pathlib import Path

import click
import numpy as np
from matplotlib.figure import Figure

from lpzero.benchmarks import get_benchmark
from lpzero.cache import CacheSettings, InputCache
from lpzero.proxies import FoundProxy
from lpzero.report.results import best_baseline, split_ids
from lpzero.search import FitnessEvaluator, correlation

from descriptors import simplest_descriptor


def _cache_of(best: dict, root: Path | None) -> InputCache:
    """The cache the search of `best` read (its recorded settings)."""
    recorded = best["cache"]
    settings = CacheSettings(**{f.name: recorded[f.name] for f in fields(CacheSettings) if f.name in recorded})
    return InputCache(settings, root)


def _rho(value: dict) -> float:
    return np.nan if value["spearman"] is None else value["spearman"]


def _pairs(text: str, option: str) -> dict[str, str]:
    """NAME=FOLDER items of a comma-separated option (a NAME holds no comma)."""
    items = [item for item in text.split(",") if item]
    bad = [item for item in items if "=" not in item]
    if bad:
        raise click.BadParameter(f"{bad[0]!r} is not NAME=FOLDER (names hold no comma)", param_hint=option)
    return dict(item.split("=", 1) for item in items)


@click.command()
@click.option("--runs", "runs_text", required=True,
              help="Comma-separated NAME=FOLDER: each benchmark's search folder (its best.json).")
@click.option("--rows", "rows_text", default="", help="Comma-separated NAME=FOLDER: more proxies, rows only.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Cache root the searches used.")
@click.option("--out", type=click.Path(file_okay=False), default="runs/transfer", show_default=True)
def main(runs_text: str, rows_text: str, cache_dir: str | None, out: str) -> None:
    runs, more = _pairs(runs_text, "--runs"), _pairs(rows_text, "--rows")
    found = {name: FoundProxy.load(folder) for name, folder in {**runs, **more}.items()}
    names, sources = list(runs), [*runs, *more]
    matrix = np.full((len(sources) + 2, len(names)), np.nan)
    extra = {}
    for j, target in enumerate(names):
        best = found[target].best
        bench = get_benchmark(found[target].found_on or best["benchmark"])
        cache = _cache_of(best, Path(cache_dir) if cache_dir else None)
        held = split_ids(best, "heldout", bench.ids(), bench.name)
        truth = np.array([bench.architecture(a).ground_truth for a in held])
        inputs = cache.load(held)
        for i, source in enumerate(sources):
            proxy = found[source].on_benchmark(bench.name)
            scores = FitnessEvaluator(proxy.pset, inputs, truth).scores(proxy.parsed)
            matrix[i, j] = _rho(correlation(proxy.orientation * scores, truth))
        hand = best_baseline(cache, held, truth)
        label, values = simplest_descriptor(bench, held)
        matrix[len(sources), j] = abs(hand["spearman"]) if hand else np.nan
        matrix[len(sources) + 1, j] = _rho(correlation(values, truth))
        extra[target] = (hand["proxy"] if hand else "none", label, len(held))
        click.echo(f"{target}: {len(held)} held-out architectures")
    rows = [f"found on {n}" for n in sources] + ["best hand-designed (|ρ|)", "simplest descriptor"]
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "transfer.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["proxy", *names])
        w.writerows([row, *(f"{v:+.3f}" for v in matrix[k])] for k, row in enumerate(rows))
    lines = ["| proxy \\ held-out half of | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for k, row in enumerate(rows):
        cells = [f"**{v:+.3f}**" if k == j else f"{v:+.3f}" for j, v in enumerate(matrix[k])]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines.append("| (n; hand-designed; descriptor) | " + " | ".join(
        f"{extra[n][2]}; {extra[n][0]}; {extra[n][1]}" for n in names) + " |")
    (out_dir / "transfer.md").write_text("\n".join(lines) + "\n")
    _heat_map(matrix, rows, names, out_dir / "transfer.png")
    click.echo("\n".join(lines))
    click.echo(f"written: {out_dir}/transfer.csv, transfer.md, transfer.png")


def _heat_map(matrix: np.ndarray, rows: list[str], columns: list[str], path: Path) -> None:
    fig = Figure(figsize=(1.6 * len(columns) + 3, 0.55 * len(rows) + 1.5))
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=20, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, "n/a" if np.isnan(v) else f"{v:+.2f}", ha="center", va="center", fontsize=8)
    ax.set_xlabel("held-out half of")
    fig.colorbar(image, ax=ax, label="Spearman ρ")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
