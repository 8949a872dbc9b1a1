"""The paper's ablations of the search, each writing a CSV and a PNG.

    python scripts/ablations.py rps         # evolution vs no RPS vs random search, 3 seeds
    python scripts/ablations.py population  # initial population 80 / 100 / 200
    python scripts/ablations.py unary       # paper toolbox, 2 / 3 / 4 / 5 unary ops per branch

Every search uses the cached inputs of `--benchmark` (built first if missing) and
the held-out protocol of `lpzero evolve`, with one run of the loop unless `--runs`
says otherwise (the paper ablates single runs); results go to `--out/<study>/`.
"""
from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import click

from lpzero.benchmarks.selection import BenchmarkRequest
from lpzero.cache.request import CacheRequest
from lpzero.report.plots import plot_mean_curves
from lpzero.search import EvolveSettings, SearchSetup
from lpzero.workflows.evolve import EvolveRequest, evolve

STUDIES = {
    # study -> list of (variant label, changes to SearchSetup, changes to EvolveSettings)
    "rps": [("evolution", {}, {}), ("evolution without RPS", {"rps": False}, {}),
            ("random search", {}, {"random_search": True})],
    "population": [(f"population {p}", {}, {"population": p}) for p in (80, 100, 200)],
    "unary": [(f"{n} unary ops", {"toolbox": "paper", "n_unary": n}, {}) for n in (2, 3, 4, 5)],
}
SUMMARY_FIELDS = ("variant", "seed", "search_rho", "heldout_rho", "heldout_tau", "whole_rho", "rps_rejected",
                  "invalid", "seconds", "formula")


def _read_best_curve(run_dir: Path) -> list[float]:
    """Best fitness per iteration, over the search's runs."""
    best: dict[int, float] = {}
    with open(run_dir / "log.csv") as f:
        for r in csv.DictReader(f):
            it = int(r["iteration"])
            best[it] = max(best.get(it, float("-inf")), float(r["best"]))
    return [best[it] for it in sorted(best)]


@click.command()
@click.argument("study", type=click.Choice(sorted(STUDIES)))
@click.option("--benchmark", default="gpt2")
@click.option("--iterations", type=int, default=1000)
@click.option("--seeds", default="42,43,44", help="Comma-separated seeds (the rps study's default is 3 seeds).")
@click.option("--runs", type=int, default=1, show_default=True,
              help="Runs of the loop per search (lpzero evolve --runs); the paper's ablations compare single runs.")
@click.option("--batch-size", type=int, default=None)
@click.option("--seq-len", type=int, default=None)
@click.option("--cache-dir", type=click.Path(), default=None)
@click.option("--out", type=click.Path(), default="runs/ablations")
def main(study, benchmark, iterations, seeds, runs, batch_size, seq_len, cache_dir, out):
    cache = CacheRequest(batch_size, seq_len, cache_dir=cache_dir)
    seed_list = [int(s) for s in seeds.split(",")] if study == "rps" else [int(seeds.split(",")[0])]
    out_dir = Path(out) / f"{benchmark}_{study}"
    rows, curves = [], {}
    for label, setup_changes, evolve_changes in STUDIES[study]:
        for seed in seed_list:
            setup = replace(SearchSetup(runs=runs, **setup_changes),
                            evolve=replace(EvolveSettings(iterations=iterations, seed=seed), **evolve_changes))
            run_dir = out_dir / f"{label.replace(' ', '_')}_seed{seed}"
            best = evolve(EvolveRequest(BenchmarkRequest(benchmark), cache, setup=setup, baselines="none",
                                        out=str(run_dir))).best
            rows.append({
                "variant": label, "seed": seed, "search_rho": best["search"]["spearman"],
                "heldout_rho": best["heldout"]["spearman"], "heldout_tau": best["heldout"]["kendall"],
                "whole_rho": best["whole"]["spearman"], "rps_rejected": best["rps"]["rejected"],
                "invalid": sum(best["invalid"].values()), "seconds": round(best["seconds"], 1),
                "formula": best["formula"],
            })
            curves.setdefault(label, []).append(_read_best_curve(run_dir))
            click.echo(f"{label:<24} seed {seed}: held-out rho {best['heldout']['spearman']:+.3f}")
    with open(out_dir / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=SUMMARY_FIELDS)
        w.writeheader()
        w.writerows(rows)
    plot_mean_curves(curves, out_dir / "best_fitness.png", f"{benchmark}: {study} ablation")
    click.echo(f"written {out_dir / 'summary.csv'} and best_fitness.png")


if __name__ == "__main__":
    main()
