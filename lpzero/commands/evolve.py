"""`lpzero evolve --benchmark BENCH`: the search (paper Algorithm 1), every setting an option."""
from __future__ import annotations

from dataclasses import replace

import click

from lpzero.errors import LPZeroError
from lpzero.primitives import DEFAULT_TABLE
from lpzero.search import COMBINE, FINAL_SELECTIONS, NORMALIZATIONS, TOOLBOXES, EvolveSettings, SearchSetup
from lpzero.search.loop import DISTINCT
from lpzero.workflows.evolve import EvolveRequest, evolve as run_evolve

from .options import (StageBars, benchmark_options, benchmark_request, cache_options, cache_request, default,
                      executor_settings, quick, ranged)

#: settings of `lpzero evolve --quick` (explicit options still win)
QUICK = {"batch_size": 2, "seq_len": 64, "iterations": 300, "baselines": "num_params,decoder_params,grad_norm"}


def benchmark_names(text: str) -> list[str]:
    """The benchmarks of `--benchmark` (one, or several separated by commas)."""
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise LPZeroError(f"--benchmark {text!r}: an empty name in the list")
    return names


def _evolve(name: str):
    return default(EvolveSettings, name)


def _setup(name: str):
    return default(SearchSetup, name)


@click.command()
@click.option("--benchmark", default="gpt2", show_default=True,
              help="A benchmark, or several separated by commas (one formula searched on all of them, its "
                   "fitness combining their |ρ| by --combine).")
@click.option("--combine", type=click.Choice(tuple(COMBINE)), default=_setup("combine"), show_default=True,
              help="Several benchmarks: fitness is the min or the mean of their |ρ|.")
@click.option("--normalize", type=click.Choice(NORMALIZATIONS), default=_setup("normalize"), show_default=True,
              help="Several benchmarks: hand-designed divides each |ρ| by that of the benchmark's best "
                   "hand-designed proxy on its fitness sample (its cache must hold them).")
@click.option("--toolbox", "toolbox_kind", type=click.Choice(TOOLBOXES), default=_setup("toolbox"), show_default=True)
@click.option("--ops", default=DEFAULT_TABLE, show_default=True,
              help="Op table: default (the paper's), extended (plus depth_weighted, first_layer, last_layer, "
                   "median), extended:OP,OP (the default plus only those), an lpzero.ops entry point, module:ATTR "
                   "or file.py:ATTR.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output directory (default: runs/<benchmark>).")
@click.option("--population", type=ranged(EvolveSettings, "population"), default=_evolve("population"), show_default=True)
@click.option("--iterations", type=ranged(EvolveSettings, "iterations"), default=_evolve("iterations"), show_default=True)
@click.option("--crossover", type=ranged(EvolveSettings, "crossover"), default=_evolve("crossover"), show_default=True)
@click.option("--mutation", type=ranged(EvolveSettings, "mutation"), default=_evolve("mutation"), show_default=True)
@click.option("--top", "top_fraction", type=ranged(EvolveSettings, "top_fraction"),
              default=_evolve("top_fraction"), show_default=True, help="Parent pool: top fraction.")
@click.option("--sample", type=ranged(SearchSetup, "sample"), default=_setup("sample"), show_default=True,
              help="Architectures fitness is computed on.")
@click.option("--holdout", type=ranged(SearchSetup, "holdout"),
              default=_setup("holdout"), show_default=True, help="Fraction held out from the search.")
@click.option("--seed", type=int, default=_evolve("seed"), show_default=True)
@click.option("--runs", "n_runs", type=ranged(SearchSetup, "runs"), default=_setup("runs"), show_default=True,
              help="Independent runs of the loop (seeded from --seed; 1 = the paper's single run); the final "
                   "selection picks among the hall-of-fame trees of all runs.")
@click.option("--unary", "n_unary", type=ranged(SearchSetup, "n_unary"), default=_setup("n_unary"), show_default=True,
              help="Unary ops per branch (paper toolbox).")
@click.option("--max-height", type=ranged(SearchSetup, "max_height"), default=_setup("max_height"), show_default=True,
              help="Tree height limit (typed toolbox).")
@click.option("--no-rps", is_flag=True, help="Switch the rule-based pruning strategy off (ablation).")
@click.option("--distinct", type=click.Choice(DISTINCT), default=_evolve("distinct"), show_default=True,
              help="Population members differ in how they rank the sample (ranking) or only as trees (text).")
@click.option("--final-selection", type=click.Choice(FINAL_SELECTIONS), default=_setup("final_selection"),
              show_default=True,
              help="Found proxy: the hall-of-fame tree with the best ρ on the whole search part, or the fittest.")
@click.option("--select", default=_setup("select"), show_default=True,
              help="Found proxy, from the complexity/search-part-ρ Pareto front, by PySR's rules: accuracy (the most "
                   "accurate: the final selection's first tree), score (the largest drop of log(1-ρ) per unit of "
                   "complexity), best (the best score within 1.5x the lowest 1-ρ); or simplest:DELTA (the simplest "
                   "front tree within DELTA of its best ρ).")
@click.option("--parsimony", default=_setup("parsimony"), show_default=True,
              help="Parsimony pressure: COEF (selection fitness |ρ| - COEF x complexity, gplearn's coefficient; "
                   "reported ρ stays raw) or double:FITNESS_SIZE,PARSIMONY_SIZE (DEAP's double tournament as "
                   "parent selection). 0: none.")
@click.option("--random-search", is_flag=True, help="Random search instead of evolution (baseline).")
@click.option("--resume", is_flag=True, help="Continue from the checkpoints in --out.")
@click.option("--baselines", default="all", show_default=True, help="Hand-designed proxies to compare against.")
@click.option("--quick", "is_quick", is_flag=True,
              help=f"A first run in minutes: {QUICK['batch_size']} x {QUICK['seq_len']} batch, {QUICK['iterations']} "
                   f"iterations, baselines {QUICK['baselines']} (explicit options still win).")
@benchmark_options
@cache_options
@click.pass_context
def evolve(ctx: click.Context, benchmark: str, is_quick: bool, **kw) -> None:
    """Search for a proxy with genetic programming (paper Algorithm 1)."""
    if is_quick:
        quick(ctx, kw, QUICK)
    setup = SearchSetup(
        toolbox=kw.pop("toolbox_kind"), sample=kw.pop("sample"), holdout=kw.pop("holdout"), rps=not kw.pop("no_rps"),
        n_unary=kw.pop("n_unary"), max_height=kw.pop("max_height"), final_selection=kw.pop("final_selection"),
        runs=kw.pop("n_runs"), select=kw.pop("select"), parsimony=kw.pop("parsimony"), combine=kw.pop("combine"),
        normalize=kw.pop("normalize"),
        evolve=EvolveSettings(population=kw.pop("population"), iterations=kw.pop("iterations"),
                              crossover=kw.pop("crossover"), mutation=kw.pop("mutation"),
                              top_fraction=kw.pop("top_fraction"), seed=kw.pop("seed"),
                              random_search=kw.pop("random_search"), distinct=kw.pop("distinct")),
    )
    first, *others = benchmark_names(benchmark)
    options = benchmark_request(first, kw)  # every benchmark of the list is opened with these options
    request = EvolveRequest((options, *(replace(options, name=n) for n in others)), executor=executor_settings(kw),
                            setup=setup, baselines=kw.pop("baselines"), out=kw.pop("out"), resume=kw.pop("resume"),
                            cache=cache_request(kw), ops=kw.pop("ops"))
    with StageBars() as bars:
        result = run_evolve(request, bars)
    click.echo((result.out / "report.md").read_text())
    click.echo(f"written: {result.out}/best.json, hall_of_fame.json, pareto_front.json, log.csv, evolution.png, "
               "pareto_formulas.png, report.md")
