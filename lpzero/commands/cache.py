"""`lpzero cache BENCH`: compute and store the six inputs and the hand-designed proxies' values."""
from __future__ import annotations

import click

from lpzero.workflows.cache import CachingRequest, cache as run_cache

from .options import StageBars, benchmark_options, benchmark_request, cache_options, cache_request, executor_settings


@click.command()
@click.argument("benchmark")
@benchmark_options
@cache_options
@click.option("--baselines", default="all", show_default=True, help="Baseline proxies to store: all, none or a list.")
def cache(benchmark: str, baselines: str, **kw) -> None:
    """Compute and store the six inputs (and baseline proxies) of every architecture."""
    request = CachingRequest(benchmark_request(benchmark, kw), cache_request(kw), executor_settings(kw), baselines)
    with StageBars() as bars:
        result = run_cache(request, bars)
    store = result.store
    click.echo(f"{len(result.ids)} architectures cached in {store.dir} ({store.size_bytes() / 2**20:.1f} MiB, "
               f"{store.settings.samples} samples per tensor)")
