"""Speed of fitness from the cache: one candidate on 50 architectures, and a whole search.

Prints the median over random valid trees of the time to score one candidate on
`--sample` cached architectures (target: <= 100 ms on the 2-core CPU), then times
the paper-protocol search (one run: population 80, 1,000 iterations; target <= 10
min) and the default search of `lpzero evolve` (`--runs` runs) unless --no-search.

    python scripts/bench_fitness.py --benchmark gpt2 --batch-size 4 --seq-len 192
"""
from __future__ import annotations

import random
import statistics
import time
from dataclasses import replace
from pathlib import Path

import click
import numpy as np
from deap import gp

from lpzero.benchmarks import get_benchmark
from lpzero.benchmarks.selection import BenchmarkRequest
from lpzero.cache import CacheSettings, InputCache
from lpzero.cache.request import CacheRequest
from lpzero.primitives import OPS, build_primitive_set, generate_typed
from lpzero.search import EvolveSettings, FitnessEvaluator, SearchSetup, violations
from lpzero.workflows.evolve import EvolveRequest, evolve


@click.command()
@click.option("--benchmark", default="gpt2")
@click.option("--batch-size", type=int, default=4)
@click.option("--seq-len", type=int, default=192)
@click.option("--samples", type=int, default=1024)
@click.option("--sample", type=int, default=50, help="Architectures per fitness evaluation.")
@click.option("--trees", type=int, default=200)
@click.option("--cache-dir", type=click.Path(), default=None)
@click.option("--no-search", is_flag=True)
@click.option("--distinct", type=click.Choice(["ranking", "text"]), default="ranking", show_default=True,
              help="The search's rule for when two proxies are the same (see lpzero evolve --distinct).")
@click.option("--runs", type=int, default=SearchSetup.runs, show_default=True,
              help="Runs of the loop in the default search (lpzero evolve --runs).")
def main(benchmark, batch_size, seq_len, samples, sample, trees, cache_dir, no_search, distinct, runs):
    bench = get_benchmark(benchmark)
    cache = InputCache(CacheSettings.for_benchmark(bench, batch_size, seq_len, samples=samples),
                       Path(cache_dir) if cache_dir else None)
    ids = random.Random(0).sample(bench.ids(), sample)
    cache.compute(ids)
    truth = np.array([bench.architecture(a).ground_truth for a in ids])
    pset = build_primitive_set(OPS)
    t = time.perf_counter()
    evaluator = FitnessEvaluator(pset, cache.load(ids), truth)
    click.echo(f"loading {sample} cached architectures: {time.perf_counter() - t:.2f} s")
    rng = random.Random(1)
    times, sizes = [], []
    while len(times) < trees:
        tree = gp.PrimitiveTree(generate_typed(pset, 2, 6, rng=rng))
        if violations(tree):
            continue
        t = time.perf_counter()
        evaluator(tree)
        times.append(time.perf_counter() - t)
        sizes.append(len(tree))
        evaluator.memo.clear()
    ms = sorted(1000 * x for x in times)
    click.echo(f"fitness of one candidate on {sample} architectures ({trees} random valid trees, "
               f"median {statistics.median(sizes)} nodes): median {statistics.median(ms):.1f} ms, "
               f"p90 {ms[int(0.9 * len(ms))]:.1f} ms")
    if no_search:
        return
    request = EvolveRequest(BenchmarkRequest(benchmark), CacheRequest(batch_size, seq_len, samples=samples,
                                                                      cache_dir=cache_dir), baselines="none")
    for label, n_runs in (("paper-protocol search (80 x 1000, one run)", 1), (f"default search ({runs} runs)", runs)):
        setup = SearchSetup(runs=n_runs, evolve=EvolveSettings(population=80, iterations=1000, seed=42,
                                                               distinct=distinct))
        t = time.perf_counter()
        best = evolve(replace(request, setup=setup, out=f"runs/bench_fitness_{n_runs}runs")).best
        click.echo(f"{label} incl. reporting: {time.perf_counter() - t:.1f} s (loops alone {best['seconds']:.1f} s); "
                   f"held-out rho {best['heldout']['spearman']:+.3f}")


if __name__ == "__main__":
    main()
