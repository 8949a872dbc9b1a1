"""Example research script: the same search with different DEAP operators.

Takes the `typed` toolbox, re-registers `mutate` (node replacement or subtree
insertion, half each) and `select` (tournament over the whole population), keeps
RPS on the new mutation, and runs the same loop and report as `lpzero evolve`.

    python scripts/custom_operators.py --benchmark gpt2 --iterations 300 --out runs/custom
"""
from __future__ import annotations

import random
from pathlib import Path

import click
from deap import gp, tools

from lpzero.benchmarks import get_benchmark
from lpzero.cache import CacheSettings, InputCache
from lpzero.report import run_search
from lpzero.search import EvolveSettings, SearchSetup, rps_guard


def customize(tb) -> None:
    def mutate(ind):
        if random.random() < 0.5:
            return gp.mutNodeReplacement(ind, pset=tb.pset)
        try:
            return gp.mutInsert(ind, pset=tb.pset)
        except IndexError:
            # DEAP fills the new primitive's other arguments with terminals, and the typed set
            # has none of the intermediate types (per-layer values, scalars): it cannot insert there
            return gp.mutNodeReplacement(ind, pset=tb.pset)

    tb.register("mutate", mutate)
    tb.decorate("mutate", rps_guard(tb.rps_log, tb.ops))
    tb.register("select", tools.selTournament, tournsize=5)


@click.command()
@click.option("--benchmark", default="gpt2")
@click.option("--iterations", type=int, default=300)
@click.option("--seed", type=int, default=42)
@click.option("--cache-dir", type=click.Path(), default=None)
@click.option("--out", type=click.Path(), default="runs/custom_operators")
def main(benchmark, iterations, seed, cache_dir, out):
    bench = get_benchmark(benchmark)
    cache = InputCache(CacheSettings.for_benchmark(bench), Path(cache_dir) if cache_dir else None)
    cache.compute(bench.ids())
    setup = SearchSetup(evolve=EvolveSettings(iterations=iterations, seed=seed))
    best = run_search(bench, cache, bench.ids(), setup, Path(out), customize=customize)
    click.echo(f"{best['formula']}: held-out rho {best['heldout']['spearman']:+.3f}")


if __name__ == "__main__":
    main()
