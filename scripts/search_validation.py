"""Compare search designs on the search part alone, never the held-out part.

    python scripts/search_validation.py                      # GPT-2, all variants, 16 seeds
    python scripts/search_validation.py --variants typed,paper --seeds 0-7

The held-out part of `lpzero evolve --seed S` is meant to be looked at once; choosing a
design by it fits the design to those architectures. Here the split and the fitness
sample are those of `--split-seed` (42, the CLI default), and the search architectures
outside the fitness sample (50 of the 100 on GPT-2) are the validation set: each
variant searches once per evolution seed (`SearchSetup.runs` runs of the loop, as
`lpzero evolve --runs`), and its fittest tree (oriented on the sample) is scored on
the validation set. Writes `summary.csv` (one row per search) and prints the
mean, sd and median per variant.

The final selection (`lpzero evolve --final-selection search`: of the hall-of-fame
trees of all runs, the one with the best ρ on the whole search part) needs
architectures beyond the sample, so it is checked one level down: the validation set
is halved `--halvings` times (seeded); the sample plus one half plays the search
part, and the chosen tree is scored on the other half, beside the fittest tree on the
same half.
"""
from __future__ import annotations

import csv
import random
import statistics
from dataclasses import replace
from pathlib import Path

import click
import numpy as np

from lpzero.benchmarks import get_benchmark
from lpzero.cache import CacheSettings, InputCache
from lpzero.search import (EvolveSettings, FitnessEvaluator, SearchSetup, evolve_on, search_sample, select_final,
                           spearman_fitness)

VARIANTS = {
    # name -> (changes to SearchSetup, changes to EvolveSettings)
    "typed": ({}, {}),
    "typed-1run": ({"runs": 1}, {}),
    "typed-1run-distinct-text": ({"runs": 1}, {"distinct": "text"}),
    "typed-height6": ({"max_height": 6}, {}),
    "typed-no-rps": ({"rps": False}, {}),
    "typed-population200": ({}, {"population": 200}),
    "paper": ({"toolbox": "paper"}, {}),
    "paper-1run": ({"toolbox": "paper", "runs": 1}, {}),
    "random-search": ({}, {"random_search": True}),
}
FIELDS = ("variant", "seed", "sample_fitness", "validation_rho", "validation_tau", "nested_fittest_rho",
          "nested_selected_rho", "tree")


def _seeds(spec: str) -> list[int]:
    if "-" in spec:
        lo, hi = spec.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in spec.split(",")]


def _nested_final_selection(finalists, evaluator, setup, halves) -> tuple[float, float]:
    """Mean ρ on the held-back halves of the fittest tree and of the one `select_final` picks."""
    fittest, selected = [], []
    for (part_inputs, part_truth), (rest_inputs, rest_truth) in halves:
        part = FitnessEvaluator(evaluator.pset, part_inputs, part_truth)
        rest = FitnessEvaluator(evaluator.pset, rest_inputs, rest_truth)

        def rho(tree, on: FitnessEvaluator) -> float | None:
            return spearman_fitness(evaluator.details(tree).orientation * on.scores(tree), on.truth).spearman

        choice = finalists[select_final([rho(t, part) for t in finalists], setup.final_selection)[0]]
        for tree, into in ((finalists[0], fittest), (choice, selected)):
            r = rho(tree, rest)
            into.append(float("nan") if r is None else r)
    return statistics.mean(fittest), statistics.mean(selected)


@click.command()
@click.option("--benchmark", default="gpt2")
@click.option("--variants", default=",".join(VARIANTS), help=f"Comma-separated, from: {', '.join(VARIANTS)}.")
@click.option("--seeds", default="0-15", help="Evolution seeds: a range 0-15 or a list 1,2,3.")
@click.option("--split-seed", type=int, default=42, show_default=True, help="Seed of the split and the sample.")
@click.option("--paper-batch", is_flag=True, help="Inputs from the paper's mini-batch shape.")
@click.option("--halvings", type=int, default=10, show_default=True, help="Halvings of the validation set "
              "for the check of the final selection.")
@click.option("--cache-dir", type=click.Path(), default=None)
@click.option("--out", type=click.Path(), default="runs/search_validation")
def main(benchmark, variants, seeds, split_seed, paper_batch, halvings, cache_dir, out):
    unknown = [v for v in variants.split(",") if v not in VARIANTS]
    if unknown:
        raise click.BadParameter(f"unknown variant(s) {', '.join(unknown)}", param_hint="--variants")
    bench = get_benchmark(benchmark)
    cache = InputCache(CacheSettings.for_benchmark(bench, paper_batch=paper_batch), Path(cache_dir) if cache_dir else None)
    ids = bench.ids()
    base = SearchSetup(evolve=EvolveSettings(seed=split_seed))
    search_ids, _, sample_ids = search_sample(ids, base)
    validation_ids = [a for a in search_ids if a not in set(sample_ids)]
    cache.compute(sample_ids + validation_ids)  # only the search part is ever built
    truth = {a: bench.architecture(a).ground_truth for a in sample_ids + validation_ids}
    sample_inputs, sample_truth = cache.load(sample_ids), np.array([truth[a] for a in sample_ids])
    validation_truth = np.array([truth[a] for a in validation_ids])
    validation_inputs = cache.load(validation_ids)
    halves = []  # (stand-in search part: sample + one half, the other half)
    for _ in range(halvings):
        order = random.Random(f"{split_seed}-{len(halves)}").sample(validation_ids, len(validation_ids))
        part, rest = sample_ids + order[: len(order) // 2], order[len(order) // 2 :]
        halves.append(((cache.load(part), np.array([truth[a] for a in part])),
                       (cache.load(rest), np.array([truth[a] for a in rest]))))

    rows = []
    for name in variants.split(","):
        setup_changes, evolve_changes = VARIANTS[name]
        for seed in _seeds(seeds):
            setup = replace(base, **setup_changes, evolve=replace(base.evolve, seed=seed, **evolve_changes))
            runs = evolve_on(sample_inputs, sample_truth, setup)
            finalists = [ind for _, ind in runs.finalists(setup.hall_of_fame, setup.evolve.distinct)]
            best, evaluator = finalists[0], runs.evaluator
            found = evaluator.details(best)
            scores = FitnessEvaluator(evaluator.pset, validation_inputs, validation_truth).scores(best)
            m = spearman_fitness(found.orientation * scores, validation_truth, with_kendall=True)
            fittest, selected = _nested_final_selection(finalists, evaluator, setup, halves)
            rows.append({"variant": name, "seed": seed, "sample_fitness": found.fitness,
                         "validation_rho": m.spearman, "validation_tau": m.kendall, "nested_fittest_rho": fittest,
                         "nested_selected_rho": selected, "tree": str(best)})
            click.echo(f"{name:<20} seed {seed:>3}: sample {found.fitness:.3f}  validation "
                       f"{'invalid' if m.spearman is None else f'{m.spearman:+.3f}'}  nested: fittest "
                       f"{fittest:+.3f} selected {selected:+.3f}")
    out_dir = Path(out) / f"{benchmark}_split{split_seed}{'_paper_batch' if paper_batch else ''}"
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    click.echo(f"\n{len(sample_ids)} sample / {len(validation_ids)} validation architectures of the search part "
               f"(split seed {split_seed}); held-out part untouched")
    click.echo(f"nested check of the final selection: {halvings} halvings of the validation set")
    click.echo("| variant | runs | sample fitness, mean | validation ρ, mean ± sd | median | nested: fittest | "
               "nested: selected on search part |")
    click.echo("|---|---|---|---|---|---|---|")
    for name in variants.split(","):
        mine = [r for r in rows if r["variant"] == name]
        rho = [r["validation_rho"] for r in mine if r["validation_rho"] is not None]
        click.echo(f"| {name} | {len(mine)} | {statistics.mean(r['sample_fitness'] for r in mine):.3f} | "
                   f"{statistics.mean(rho):+.3f} ± {statistics.pstdev(rho):.3f} | {statistics.median(rho):+.3f} | "
                   f"{statistics.mean(r['nested_fittest_rho'] for r in mine):+.3f} | "
                   f"{statistics.mean(r['nested_selected_rho'] for r in mine):+.3f} |")
    click.echo(f"written {out_dir / 'summary.csv'}")


if __name__ == "__main__":
    main()
