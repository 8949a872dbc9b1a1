"""Example research script: a new primitive op and other DEAP operators, same search and report.

A research script that tweaks the search (docs/concepts.md, "Python API"), worked out:

1. **One new op.** `CUSTOM_OPS` is a copy of the built-in op table with one more op,
   `softplus`, declared as data like the built-in ones (`lpzero.primitives.Op`): its kind
   and levels (which give its types: element-wise, at every level), its torch function, its
   sympy form (for the exported formula) and the facts RPS reasons with (nonnegative, so
   `abs(softplus(x))` is rejected as redundant).
2. **Where the table lives.** It is a module attribute that declares its own path
   (`OpTable(path="/abs/path/scripts/custom_operators.py:CUSTOM_OPS")`): the file form
   imports it again in any process, from any folder (this script's folder is not on
   `sys.path` there). `run_search` records that path in best.json as `"ops"`, so
   `lpzero export RUN/best.json`, `lpzero rank BENCH --proxy RUN/best.json` and
   `lpzero nas --proxy RUN/best.json` read the found tree with this table.
3. **Other operators.** `customize` re-registers `mate` (leaf-biased crossover), `mutate`
   (node replacement or subtree insertion, half each) and `select` (tournament) on the
   `typed` toolbox with `register_operator`, which keeps the setup's height limit
   (`--max-height`) and RPS (off under `--no-rps`), as `build_toolbox` does for its own.

    python scripts/custom_operators.py --benchmark gpt2 --limit 50 --iterations 300 --out runs/custom
"""
from __future__ import annotations

import random
from pathlib import Path

import click
import sympy
import torch
from deap import base, gp, tools

from lpzero.benchmarks.selection import BenchmarkRequest
from lpzero.cache import CacheSettings
from lpzero.cache.request import CacheRequest
from lpzero.primitives import OPS, Op
from lpzero.search import EvolveSettings, SearchSetup
from lpzero.search.toolbox import register_operator
from lpzero.workflows.evolve import EvolveRequest, evolve


def _softplus_sympy(x: sympy.Expr) -> sympy.Expr:
    return sympy.log(1 + sympy.exp(x))


#: the new op: a smooth relu. Finite on every probe (torch's softplus is linear above 20);
#: positive, except that float32 underflows to 0 below about -100, an input no layer
#: statistic reaches, so it is not declared `can_produce_zero` (1/softplus(x) is allowed)
SOFTPLUS = Op("softplus", "x01", "elementwise", ("tensors", "layers", "scalar"), torch.nn.functional.softplus,
              _softplus_sympy, "log(1 + e^x), a smooth relu", nonnegative=True)

#: the built-in table plus softplus; its path is how best.json names it (`"ops"`)
CUSTOM_OPS = OPS.copy(path=f"{Path(__file__).resolve()}:CUSTOM_OPS")
CUSTOM_OPS.add(SOFTPLUS)


def cx_leaf_biased(ind1, ind2, termpb: float = 0.1):
    """Koza's crossover: one-point crossover at a leaf with probability `termpb`, else at an inner node.

    As `gp.cxOnePointLeafBiased`, with the common types ordered by name, so a seeded run
    repeats in any process.
    """
    if len(ind1) < 2 or len(ind2) < 2:
        return ind1, ind2
    at: list[dict[type, list[int]]] = []
    for ind in (ind1, ind2):
        leaves = random.random() < termpb
        where: dict[type, list[int]] = {}
        for i, node in enumerate(ind[1:], 1):
            if (node.arity == 0) == leaves:
                where.setdefault(node.ret, []).append(i)
        at.append(where)
    common = sorted(set(at[0]) & set(at[1]), key=lambda t: t.__name__)
    if common:
        t = random.choice(common)
        s1, s2 = ind1.searchSubtree(random.choice(at[0][t])), ind2.searchSubtree(random.choice(at[1][t]))
        ind1[s1], ind2[s2] = ind2[s2], ind1[s1]
    return ind1, ind2


def mutate_replace_or_insert(ind, pset: gp.PrimitiveSetTyped):
    """Half the time replace one node by another of the same type, else insert a new node above one."""
    if random.random() < 0.5:
        return gp.mutNodeReplacement(ind, pset=pset)
    try:
        return gp.mutInsert(ind, pset=pset)
    except IndexError:
        # DEAP fills the new primitive's other arguments with terminals, and the typed set
        # has none of the intermediate types (per-layer values, scalars): it cannot insert there
        return gp.mutNodeReplacement(ind, pset=pset)


def customize(tb: base.Toolbox) -> None:
    """Re-register mate, mutate and select; the height limit and RPS stay as the setup has them."""
    register_operator(tb, "mate", cx_leaf_biased, termpb=0.1)
    register_operator(tb, "mutate", mutate_replace_or_insert, pset=tb.pset)
    register_operator(tb, "select", tools.selTournament, tournsize=5)


@click.command()
@click.option("--benchmark", default="gpt2", show_default=True, help="gpt2, flexibert, lts:DIR, ...")
@click.option("--out", type=click.Path(file_okay=False), default="runs/custom_operators", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Default: the benchmark's CPU batch.")
@click.option("--seq-len", type=click.IntRange(min=1), default=None, help="Default: the benchmark's CPU batch.")
@click.option("--samples", type=click.IntRange(min=1), default=CacheSettings.samples, show_default=True,
              help="Elements kept per cached tensor.")
@click.option("--limit", type=click.IntRange(min=4), default=None,
              help="Only N architectures (a seeded subset, as `lpzero evolve --limit`).")
@click.option("--population", type=click.IntRange(min=2), default=EvolveSettings.population, show_default=True)
@click.option("--iterations", type=click.IntRange(min=0), default=300, show_default=True)
@click.option("--runs", type=click.IntRange(min=1), default=SearchSetup.runs, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None)
@click.option("--no-rps", is_flag=True, help="Switch the rule-based pruning strategy off.")
@click.option("--max-height", type=click.IntRange(min=2), default=SearchSetup.max_height, show_default=True)
def main(benchmark, out, batch_size, seq_len, samples, limit, population, iterations, runs, seed, cache_dir, no_rps,
         max_height):
    """Search with the softplus op table and the operators above; write the usual outputs to --out."""
    setup = SearchSetup(rps=not no_rps, max_height=max_height, runs=runs,
                        evolve=EvolveSettings(population=population, iterations=iterations, seed=seed))
    request = EvolveRequest(BenchmarkRequest(benchmark, limit=limit),
                            CacheRequest(batch_size, seq_len, samples=samples, cache_dir=cache_dir), setup=setup,
                            baselines="none", out=out, ops=CUSTOM_OPS.path)
    best = evolve(request, customize=customize).best
    rho = best["heldout"]["spearman"]
    click.echo(f"{best['formula']}: held-out rho {'n/a' if rho is None else format(rho, '+.3f')}")
    click.echo(f"written: {Path(out) / 'best.json'} (op table {best['ops']})")


if __name__ == "__main__":
    main()
