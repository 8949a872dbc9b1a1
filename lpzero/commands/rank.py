"""`lpzero rank BENCH`: how well each proxy ranks the architectures (ρ / τ table, files, plots)."""
from __future__ import annotations

import click

from lpzero.report.rank import format_table
from lpzero.report.results import SPLIT_PARTS
from lpzero.workflows.rank import RankRequest, rank as run_rank

from .options import StageBars, benchmark_options, benchmark_request, cache_options, cache_request, executor_settings


@click.command()
@click.argument("benchmark")
@benchmark_options
@cache_options
@click.option("--proxies", default="all", show_default=True, help="all, none, or comma-separated baseline names.")
@click.option("--proxy", "found", multiple=True, type=click.Path(),
              help="A found proxy (best.json or its folder); repeatable.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output directory (default: "
                                                                            "runs/rank/<benchmark>).")
@click.option("--no-plots", is_flag=True, help="Skip the rank-vs-rank PNGs.")
@click.option("--split", type=click.Choice(SPLIT_PARTS), default="all", show_default=True,
              help="Score only this part of the --proxy run's search/held-out split.")
def rank(benchmark: str, proxies: str, found: tuple[str, ...], out: str | None, no_plots: bool, split: str,
         **kw) -> None:
    """Score every architecture with each proxy; print and write the ρ/τ table."""
    request = RankRequest(benchmark_request(benchmark, kw), executor=executor_settings(kw), proxies=proxies,
                          found=found, out=out, plots=not no_plots, split=split, cache=cache_request(kw))
    with StageBars() as bars:
        result = run_rank(request, bars)
    click.echo(format_table(result.rows, result.raw_metric))
    click.echo(f"written: {result.out / 'rank.csv'}, rank.json" + ("" if no_plots else ", rank_*.png"))
