"""`lpzero info BENCH`: what a benchmark holds, before any model is run."""
from __future__ import annotations

import click

from lpzero.benchmarks.selection import describe
from lpzero.files import json_text

from .options import benchmark_options, benchmark_request


@click.command()
@click.argument("benchmark")
@click.option("--json", "as_json", is_flag=True, help="Print every architecture as JSON.")
@benchmark_options
def info(benchmark: str, as_json: bool, **kw) -> None:
    """Summarise BENCHMARK: count, ground-truth range, parameter range."""
    bench = benchmark_request(benchmark, kw).open()
    summary = describe(bench)
    if as_json:
        click.echo(json_text({"benchmark": summary["benchmark"], "architectures": summary["architectures"]}, indent=None))
        return
    click.echo(f"benchmark      {summary['benchmark']}")
    click.echo(f"architectures  {len(summary['architectures'])}")
    truth = summary["ground_truth_range"]
    click.echo(f"ground truth   {summary['raw_metric']} from {truth[0]:.4g} to {truth[1]:.4g}" if truth else
               "ground truth   none (rank and evolve need it; nas does not)")
    low, high = summary["params_range"]
    click.echo(f"parameters     {low:,} to {high:,} (total, our builder)")
    if summary["reference_match"]:
        matching, total = summary["reference_match"]
        click.echo(f"reference      {matching}/{total} architectures match the benchmark's own parameter counts")
    (batch, seq), (paper_batch, paper_seq) = summary["default_batch"], summary["paper_batch"]
    click.echo(f"mini-batch     {batch} x {seq} (default), {paper_batch} x {paper_seq} (paper, --paper-batch)")
    for label, text in bench.describe_space():  # the family's own facts: a LoNAS space's groups, a dtype
        click.echo(f"{label:<15}{text}")
