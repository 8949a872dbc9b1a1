"""`lpzero build lonas-mini`: build a benchmark with its ground truth (resumes an interrupted build)."""
from __future__ import annotations

from pathlib import Path

import click

from lpzero.benchmarks import LONAS_MINI_DIR, resolve_data_root
from lpzero.benchmarks.lonas.build import build_lonas_mini
from lpzero.cache.request import check_device
from lpzero.report.spread import record_spread

from .options import StageBars, executor_options, executor_settings

#: where `--smoke` builds by default: never in the real build's folder, which `lonas-mini` opens
SMOKE_DIR = "lonas_mini_smoke"


@click.command()
@click.argument("name", type=click.Choice(["lonas-mini"]))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help=f"Where to build (default: ./{LONAS_MINI_DIR}, with --smoke ./{SMOKE_DIR}); a finished stage "
                   "there is reused: an interrupted build resumes.")
@click.option("--smoke", is_flag=True, help="A seconds-long toy size, for tests.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda (cuda:N).")
@click.option("--data", type=click.Path(), default=None, help="Data root (default: $LPZERO_DATA, else ../shared/data).")
@executor_options
def build(name: str, out: str | None, smoke: bool, seed: int, device: str, data: str | None, **kw) -> None:
    """Build a benchmark with its ground truth: lonas-mini (a LoNAS super-network and its sub-networks)."""
    check_device(device)
    folder = Path(out or (SMOKE_DIR if smoke else LONAS_MINI_DIR))
    with StageBars() as bars, executor_settings(kw).make() as executor:
        state = build_lonas_mini(folder, resolve_data_root(data), smoke, seed, device, bars, executor)
    record_spread(folder)
    stages = state["stages"]
    truth = stages["ground_truth"]
    click.echo(f"{name} built in {folder}: {truth['subnetworks']} sub-networks, held-out perplexity on "
               f"{truth['tokens']:,} tokens, split-half Spearman {truth['split_half_spearman']:.3f}")
    click.echo("seconds per stage: " + ", ".join(f"{k} {v['seconds']:.0f}" for k, v in stages.items()))
    where = "lonas-mini" if folder == Path(LONAS_MINI_DIR) else f"lonas:{folder}"
    click.echo(f"open it as {where} (e.g. `lpzero rank {where}`)")
