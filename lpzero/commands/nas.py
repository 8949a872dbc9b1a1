"""`lpzero nas --space SPACE --proxy P`: pick architectures with a proxy under budgets."""
from __future__ import annotations

import click

from lpzero.nas import COSTS, NSGASettings
from lpzero.workflows.nas import NASRequest, nas as run_nas

from .options import (StageBars, benchmark_options, benchmark_request, cache_options, cache_request, default,
                      executor_settings, quick, ranged)

#: settings of `lpzero nas --quick` (explicit options still win)
NAS_QUICK = {"batch_size": 2, "seq_len": 64, "population": 16, "generations": 5}


def _nsga(name: str):
    return default(NSGASettings, name)


@click.command()
@click.option("--space", "space_name", required=True,
              help="lts or gpt2 (Archai's GPT-2 space, choices read from the gpt2 benchmark), lts:PATH (from another "
                   "results directory), lonas (the sub-networks of lonas-mini), lonas:DIR (of a built LoNAS directory "
                   "or a local LLaMA checkpoint, with --adapter), tabular:BENCHMARK (a benchmark's own architectures, "
                   "scored exhaustively) or module:Class.")
@click.option("--proxy", "proxy_text", required=True,
              help="A found proxy (best.json or its folder), or a baseline name (-NAME negates it).")
@click.option("--cost", "cost_text", default="params", show_default=True,
              help=f"Costs to minimise beside maximising the proxy: comma-separated {', '.join(COSTS)}.")
@click.option("--max-params", type=click.FloatRange(min=0), default=None, help="Limit on the parameter count.")
@click.option("--max-flops", type=click.FloatRange(min=0), default=None,
              help="Limit on the FLOPs of one forward pass on one sequence.")
@click.option("--max-latency", type=click.FloatRange(min=0), default=None,
              help="Limit on the latency (ms) of one forward pass on one sequence, measured on --device.")
@click.option("--cost-seq-len", type=click.IntRange(min=1), default=None,
              help="Sequence length of the FLOPs and latency pass (default: the benchmark's default).")
@click.option("--population", type=ranged(NSGASettings, "population"), default=_nsga("population"), show_default=True)
@click.option("--generations", type=ranged(NSGASettings, "generations"), default=_nsga("generations"), show_default=True)
@click.option("--crossover", type=ranged(NSGASettings, "crossover"), default=_nsga("crossover"), show_default=True)
@click.option("--mutation", type=ranged(NSGASettings, "mutation"), default=_nsga("mutation"), show_default=True)
@click.option("--seed", type=int, default=_nsga("seed"), show_default=True)
@click.option("--cached-scores", is_flag=True,
              help="Tabular: score a found proxy on the cache's samples instead of building every model.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output directory (default: runs/nas/<space>).")
@click.option("--resume", is_flag=True, help="Continue from checkpoint.json in --out.")
@click.option("--quick", "is_quick", is_flag=True,
              help=f"{NAS_QUICK['batch_size']} x {NAS_QUICK['seq_len']} batch, population {NAS_QUICK['population']}, "
                   f"{NAS_QUICK['generations']} generations (explicit options still win).")
@benchmark_options
@cache_options
@click.pass_context
def nas(ctx: click.Context, space_name: str, proxy_text: str, cost_text: str, is_quick: bool, **kw) -> None:
    """Pick architectures with a proxy: NSGA-II over (proxy score, costs) under limits."""
    if is_quick:
        quick(ctx, kw, NAS_QUICK)
    limits = {name: value for name in COSTS if (value := kw.pop(f"max_{name}")) is not None}
    request = NASRequest(
        benchmark_request(space_name, kw), proxy_text, tuple(c.strip() for c in cost_text.split(",") if c.strip()),
        limits, kw.pop("cost_seq_len"),
        NSGASettings(kw.pop("population"), kw.pop("generations"), kw.pop("crossover"), kw.pop("mutation"),
                     kw.pop("seed")),
        executor=executor_settings(kw), cached_scores=kw.pop("cached_scores"), out=kw.pop("out"),
        resume=kw.pop("resume"), cache=cache_request(kw))
    with StageBars() as bars:
        out = run_nas(request, bars).out
    click.echo((out / "report.md").read_text())
    click.echo(f"written: {out}/pareto.csv, candidates.csv, pareto.png, chosen/, front/, report.md, summary.json")
