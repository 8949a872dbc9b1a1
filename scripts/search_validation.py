"""Compare search designs on the search part alone, never the held-out part.

    python scripts/search_validation.py                      # GPT-2, all variants, 16 seeds
    python scripts/search_validation.py --variants typed,paper --seeds 0-7
    python scripts/search_validation.py --variants typed --seeds 0-7 --selects accuracy,best,simplest:0.005
    python scripts/search_validation.py --benchmark gpt2 --seeds 0-3 \
        --variants typed,typed-extended,typed+depth_weighted,typed+first_layer,typed+last_layer,typed+median

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

`--selects accuracy,best,simplest:0.005` checks `lpzero evolve --select` the same way: on each
halving, the complexity–ρ front is built on the stand-in search part (as `evolve` builds it on
the search part) and each rule's pick is scored on the other half.

Search-space ablation: `typed-extended` searches with the "extended" op table (the default
ops plus every op of `lpzero.primitives.ops.EXTENDED_OPS`), `typed+OP` with the default ops
plus OP alone (`"extended:OP"`), each against `typed` on the same seeds and validation set.
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
from lpzero.primitives import DEFAULT_TABLE, EXTENDED_TABLE, op_table
from lpzero.primitives.ops import EXTENDED_OPS
from lpzero.search.complexity import pareto_front, parse_select, select_model, tree_complexity
from lpzero.search.search import front_pool
from lpzero.search import (EvolveSettings, FitnessEvaluator, SearchSetup, evolve_on, search_sample, select_final,
                           spearman_fitness)

VARIANTS = {
    # name -> (changes to SearchSetup, changes to EvolveSettings, op table)
    "typed": ({}, {}, DEFAULT_TABLE),
    "typed-1run": ({"runs": 1}, {}, DEFAULT_TABLE),
    "typed-1run-distinct-text": ({"runs": 1}, {"distinct": "text"}, DEFAULT_TABLE),
    "typed-height6": ({"max_height": 6}, {}, DEFAULT_TABLE),
    "typed-no-rps": ({"rps": False}, {}, DEFAULT_TABLE),
    "typed-population200": ({}, {"population": 200}, DEFAULT_TABLE),
    "paper": ({"toolbox": "paper"}, {}, DEFAULT_TABLE),
    "paper-1run": ({"toolbox": "paper", "runs": 1}, {}, DEFAULT_TABLE),
    "random-search": ({}, {"random_search": True}, DEFAULT_TABLE),
    # search-space ablation: every extended op, and each alone
    "typed-extended": ({}, {}, EXTENDED_TABLE),
    **{f"typed+{op.name}": ({}, {}, f"{EXTENDED_TABLE}:{op.name}") for op in EXTENDED_OPS},
}
FIELDS = ("variant", "ops", "seed", "sample_fitness", "validation_rho", "validation_tau", "nested_fittest_rho",
          "nested_selected_rho", "tree")


def _seeds(spec: str) -> list[int]:
    if "-" in spec:
        lo, hi = spec.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in spec.split(",")]


def _nested_selects(runs, evaluator, setup, halves, selects: list[str], table) -> dict[str, tuple[float, float]]:
    """Per `--select` rule: (mean ρ on the held-back halves, mean complexity) of the tree the rule picks
    from the complexity–ρ front built on the stand-in search part (sample + one half), as `lpzero
    evolve` builds it on the search part; "accuracy" is the final selection's first tree, as there."""
    picked: dict[str, list[tuple[float, int]]] = {rule: [] for rule in selects}
    for (part_inputs, part_truth), (rest_inputs, rest_truth) in halves:
        part = FitnessEvaluator(evaluator.pset, part_inputs, part_truth)
        rest = FitnessEvaluator(evaluator.pset, rest_inputs, rest_truth)
        pool = front_pool(runs, table)
        pool_rho = [spearman_fitness(ind.evaluation.orientation * part.scores(ind), part.truth).spearman
                    for _, ind, _ in pool]
        front = [{"tree": pool[i][1], "complexity": pool[i][2], "rho": pool_rho[i]}
                 for i in pareto_front([c for _, _, c in pool], pool_rho)]
        finalists = [ind for _, ind in runs.finalists(setup.hall_of_fame, setup.evolve.distinct)]
        part_rho = [spearman_fitness(evaluator(t).orientation * part.scores(t), part.truth).spearman
                    for t in finalists]
        for rule in selects:
            at = select_model(rule, [e["complexity"] for e in front], [e["rho"] for e in front])
            tree = finalists[select_final(part_rho, setup.final_selection)[0]] if at is None else front[at]["tree"]
            r = spearman_fitness(evaluator(tree).orientation * rest.scores(tree), rest.truth).spearman
            picked[rule].append((float("nan") if r is None else r, tree_complexity(tree, table)))
    return {rule: (statistics.mean(r for r, _ in got), statistics.mean(c for _, c in got))
            for rule, got in picked.items()}


def _nested_final_selection(finalists, evaluator, setup, halves) -> tuple[float, float]:
    """Mean ρ on the held-back halves of the fittest tree and of the one `select_final` picks."""
    fittest, selected = [], []
    for (part_inputs, part_truth), (rest_inputs, rest_truth) in halves:
        part = FitnessEvaluator(evaluator.pset, part_inputs, part_truth)
        rest = FitnessEvaluator(evaluator.pset, rest_inputs, rest_truth)

        def rho(tree, on: FitnessEvaluator) -> float | None:
            return spearman_fitness(evaluator(tree).orientation * on.scores(tree), on.truth).spearman

        choice = finalists[select_final([rho(t, part) for t in finalists], setup.final_selection)[0]]
        for tree, into in ((finalists[0], fittest), (choice, selected)):
            r = rho(tree, rest)
            into.append(float("nan") if r is None else r)
    return statistics.mean(fittest), statistics.mean(selected)


@click.command()
@click.option("--benchmark", default="gpt2", show_default=True, help="gpt2, flexibert, lts:DIR, ...")
@click.option("--variants", default=",".join(VARIANTS), help=f"Comma-separated, from: {', '.join(VARIANTS)}.")
@click.option("--seeds", default="0-15", help="Evolution seeds: a range 0-15 or a list 1,2,3.")
@click.option("--split-seed", type=int, default=42, show_default=True, help="Seed of the split and the sample.")
@click.option("--paper-batch", is_flag=True, help="Inputs from the paper's mini-batch shape.")
@click.option("--halvings", type=int, default=10, show_default=True, help="Halvings of the validation set "
              "for the check of the final selection.")
@click.option("--selects", default="", help="Comma-separated `--select` rules (accuracy, best, score, simplest:DELTA) "
              "checked in the nested scheme: each picks from the front built on the stand-in search part.")
@click.option("--cache-dir", type=click.Path(), default=None)
@click.option("--out", type=click.Path(), default="runs/search_validation")
def main(benchmark, variants, seeds, split_seed, paper_batch, halvings, selects, cache_dir, out):
    unknown = [v for v in variants.split(",") if v not in VARIANTS]
    if unknown:
        raise click.BadParameter(f"unknown variant(s) {', '.join(unknown)}", param_hint="--variants")
    rules = [rule for rule in selects.split(",") if rule]
    for rule in rules:
        parse_select(rule)  # a malformed rule fails here, before any search
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
        setup_changes, evolve_changes, ops = VARIANTS[name]
        for seed in _seeds(seeds):
            setup = replace(base, **setup_changes, evolve=replace(base.evolve, seed=seed, **evolve_changes))
            runs = evolve_on(sample_inputs, sample_truth, setup, ops=ops)
            finalists = [ind for _, ind in runs.finalists(setup.hall_of_fame, setup.evolve.distinct)]
            best, evaluator = finalists[0], runs.evaluator
            found = evaluator(best)
            scores = FitnessEvaluator(evaluator.pset, validation_inputs, validation_truth).scores(best)
            m = spearman_fitness(found.orientation * scores, validation_truth, with_kendall=True)
            fittest, selected = _nested_final_selection(finalists, evaluator, setup, halves)
            by_rule = _nested_selects(runs, evaluator, setup, halves, rules, op_table(ops)) if rules else {}
            rows.append({"variant": name, "ops": ops, "seed": seed, "sample_fitness": found.fitness,
                         "validation_rho": m.spearman, "validation_tau": m.kendall, "nested_fittest_rho": fittest,
                         "nested_selected_rho": selected, "tree": str(best),
                         **{f"select {rule} rho": by_rule[rule][0] for rule in rules},
                         **{f"select {rule} complexity": by_rule[rule][1] for rule in rules}})
            click.echo(f"{name:<20} seed {seed:>3}: sample {found.fitness:.3f}  validation "
                       f"{'invalid' if m.spearman is None else f'{m.spearman:+.3f}'}  nested: fittest "
                       f"{fittest:+.3f} selected {selected:+.3f}")
    out_dir = Path(out) / f"{benchmark}_split{split_seed}{'_paper_batch' if paper_batch else ''}"
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(FIELDS) + [f"select {rule} {what}" for rule in rules
                                                          for what in ("rho", "complexity")])
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
    if rules:
        click.echo("\nnested check of `--select`: mean ρ on the held-back halves (mean complexity of the pick)")
        click.echo("| variant | " + " | ".join(rules) + " |")
        click.echo("|---|" + "---|" * len(rules))
        for name in variants.split(","):
            mine = [r for r in rows if r["variant"] == name]
            cells = [f"{statistics.mean(r[f'select {rule} rho'] for r in mine):+.3f} "
                     f"({statistics.mean(r[f'select {rule} complexity'] for r in mine):.1f})" for rule in rules]
            click.echo(f"| {name} | " + " | ".join(cells) + " |")
    click.echo(f"written {out_dir / 'summary.csv'}")


if __name__ == "__main__":
    main()
