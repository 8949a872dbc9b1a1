"""Does fitness from sampled (cached) inputs agree with fitness from full inputs?

For `--archs` architectures, extracts the full inputs once, reduces them exactly as
the cache does (`--samples` elements per tensor), and scores `--trees` random
RPS-valid trees both ways. Prints the Spearman correlation, across trees, between
the two fitness values (target >= 0.95) with a bootstrap 95% interval over trees
and the agreement per input the trees read, and writes the pairs to a CSV.
`--summarize CSV` prints the same summary for a CSV written earlier.

    python scripts/check_reduced_inputs.py --benchmark gpt2 --archs 20 --trees 1000 --out runs/check.csv
    python scripts/check_reduced_inputs.py --summarize runs/check.csv
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

from lpzero.benchmarks import get_benchmark
from lpzero.benchmarks.inputs import as_weighted, extract_inputs
from lpzero.cache import arch_seed, sample_inputs, stack_stored
from lpzero.primitives import (INPUT_SYMBOLS, OPS, build_primitive_set, default_pset, generate_typed, parse_tree,
                               tree_inputs)
from lpzero.search import spearman_fitness, violations


@click.command()
@click.option("--benchmark", default="gpt2")
@click.option("--archs", type=int, default=20)
@click.option("--trees", type=int, default=200)
@click.option("--batch-size", type=int, default=2)
@click.option("--seq-len", type=int, default=64)
@click.option("--samples", type=int, default=1024)
@click.option("--seed", type=int, default=0)
@click.option("--out", type=click.Path(), default="runs/check_reduced_inputs.csv")
@click.option("--summarize", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Only print the summary of a CSV this script wrote.")
def main(benchmark, archs, trees, batch_size, seq_len, samples, seed, out, summarize):
    if summarize:
        with open(summarize, newline="") as fh:
            summarize_rows(list(csv.DictReader(fh)), seed)
        return
    bench = get_benchmark(benchmark)
    ids = sorted(random.Random(seed).sample(bench.ids(), archs), key=bench.ids().index)
    truth = np.array([bench.architecture(a).ground_truth for a in ids])
    batch = bench.make_batch(0, batch_size, seq_len)
    full, stored = [], []
    for a in tqdm(ids, desc="extracting full inputs"):
        inputs = extract_inputs(bench, bench.build_model(a, 0), batch)
        stored.append(sample_inputs(inputs, samples, arch_seed(a, 0)))
        full.append(as_weighted(inputs))
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
    click.echo(f"{benchmark}: {len(rows)} valid trees on {archs} architectures, {samples} samples per tensor; "
               f"written {out}")
    summarize_rows(rows, seed)


def summarize_rows(rows: list[dict], seed: int, draws: int = 2000) -> None:
    """Agreement across trees, its bootstrap 95% interval, and agreement per input read."""
    red = np.array([float(r["reduced_rho"]) for r in rows])
    ful = np.array([float(r["full_rho"]) for r in rows])
    agreement = stats.spearmanr(red, ful).statistic
    gen = np.random.default_rng(seed)
    boot = [stats.spearmanr(red[i], ful[i]).statistic for i in (gen.integers(0, len(red), len(red)) for _ in range(draws))]
    low, high = np.percentile(boot, [2.5, 97.5])
    click.echo(f"Spearman across {len(rows)} trees of fitness (reduced vs full): {agreement:.3f}   (target >= 0.95); "
               f"bootstrap 95% interval {low:.3f}-{high:.3f}")
    click.echo(f"median |rho_reduced - rho_full|: {np.median(np.abs(red - ful)):.3f}")
    reads = [tree_inputs(parse_tree(r["tree"], default_pset())) for r in rows]
    for label, pick in [("trees reading S", lambda s: "S" in s), ("trees reading J, not S", lambda s: "J" in s and "S" not in s),
                        ("trees reading neither S nor J", lambda s: not s & {"S", "J"})]:
        idx = [i for i, s in enumerate(reads) if pick(s)]
        if len(idx) > 2:
            click.echo(f"  {label}: {len(idx)} trees, agreement {stats.spearmanr(red[idx], ful[idx]).statistic:.3f}")


if __name__ == "__main__":
    main()
