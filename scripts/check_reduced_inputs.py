"""Does fitness from sampled (cached) inputs agree with fitness from full inputs?

For `--archs` architectures, extracts the full inputs once, reduces them exactly as
the cache does (`--samples` elements per tensor), and scores `--trees` random
RPS-valid trees both ways. Prints the Spearman correlation, across trees, between
the two fitness values (target >= 0.95), and writes the pairs to a CSV.

    python scripts/check_reduced_inputs.py --benchmark gpt2 --archs 20 --batch-size 2 --seq-len 64
"""
from __future__ import annotations

import csv
import random
from pathlib import Path

import click
import numpy as np
import torch
from deap import gp
from scipy import stats
from tqdm import tqdm

from benchmarks import get_benchmark
from benchmarks.inputs import extract_inputs
from lpzero.cache import arch_seed, full_weighted, sample_inputs, stack_stored
from lpzero.fitness import spearman_fitness
from lpzero.rps import violations
from primitives import INPUT_SYMBOLS, OPS, build_primitive_set, generate_typed


@click.command()
@click.option("--benchmark", default="gpt2")
@click.option("--archs", type=int, default=20)
@click.option("--trees", type=int, default=200)
@click.option("--batch-size", type=int, default=2)
@click.option("--seq-len", type=int, default=64)
@click.option("--samples", type=int, default=1024)
@click.option("--seed", type=int, default=0)
@click.option("--out", type=click.Path(), default="runs/check_reduced_inputs.csv")
def main(benchmark, archs, trees, batch_size, seq_len, samples, seed, out):
    bench = get_benchmark(benchmark)
    ids = sorted(random.Random(seed).sample(bench.ids(), archs), key=bench.ids().index)
    truth = np.array([bench.architecture(a).ground_truth for a in ids])
    batch = bench.make_batch(0, batch_size, seq_len)
    full, stored = [], []
    for a in tqdm(ids, desc="extracting full inputs"):
        inputs = extract_inputs(bench, bench.build_model(a, 0), batch)
        stored.append(sample_inputs(inputs, samples, arch_seed(a, 0)))
        full.append(full_weighted(inputs))
    sampled = stack_stored(stored, samples)
    pset = build_primitive_set(OPS)
    rng = random.Random(seed + 1)
    rows = []
    bar = tqdm(total=trees, desc="scoring trees")
    while len(rows) < trees:
        tree = gp.PrimitiveTree(generate_typed(pset, 2, 6, rng=rng))
        if violations(tree):
            continue
        func = gp.compile(tree, pset)
        with torch.no_grad():
            reduced_scores = func(*[sampled[s] for s in INPUT_SYMBOLS]).double().numpy()
            full_scores = np.array([float(func(*[f[s] for s in INPUT_SYMBOLS])[0]) for f in full])
        r, f = spearman_fitness(reduced_scores, truth), spearman_fitness(full_scores, truth)
        if not (r.valid and f.valid):  # agreement is about proxies the search can use
            continue
        rows.append({"tree": str(tree), "reduced_rho": r.spearman, "full_rho": f.spearman})
        bar.update(1)
    bar.close()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["tree", "reduced_rho", "full_rho"])
        w.writeheader()
        w.writerows(rows)
    red = np.array([r["reduced_rho"] for r in rows])
    ful = np.array([r["full_rho"] for r in rows])
    agreement = stats.spearmanr(red, ful).statistic
    click.echo(f"{benchmark}: {len(rows)} valid trees on {archs} architectures, {samples} samples per tensor")
    click.echo(f"Spearman across trees of fitness (reduced vs full): {agreement:.3f}   (target >= 0.95)")
    click.echo(f"median |rho_reduced - rho_full|: {np.median(np.abs(red - ful)):.3f}; written {out}")


if __name__ == "__main__":
    main()
