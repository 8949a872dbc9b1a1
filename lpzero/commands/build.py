"""`lpzero build NAME`: build a benchmark with its ground truth (resumes an interrupted build)."""
from __future__ import annotations

import click

from lpzero.workflows.build import BuildRequest, build as run_build

from .options import StageBars, executor_options, executor_settings


@click.command()
@click.argument("name", metavar="NAME")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Where to build (default: ./lonas_mini or ./neox_mini, with --smoke ./lonas_mini_smoke or "
                   "./neox_mini_smoke); a finished stage there is reused: an interrupted build resumes.")
@click.option("--smoke", is_flag=True, help="A seconds-long toy size, for tests.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda (cuda:N).")
@click.option("--data", type=click.Path(), default=None, help="Data root (default: $LPZERO_DATA, else ../shared/data).")
@executor_options
def build(name: str, out: str | None, smoke: bool, seed: int, device: str, data: str | None, **kw) -> None:
    """Build NAME with its ground truth: lonas-mini (a LoNAS super-network and its sub-networks) or neox-mini
    (GPT-NeoX models trained here)."""
    request = BuildRequest(name, out, smoke, seed, device, data, executor_settings(kw))
    with StageBars() as bars:
        result = run_build(request, bars)
    click.echo(f"{name} built in {result.folder}: {result.summary}")
    click.echo("seconds per stage: " + ", ".join(f"{k} {v['seconds']:.0f}" for k, v in result.state["stages"].items()))
    click.echo(f"open it as {result.open_as} (e.g. `lpzero rank {result.open_as}`)")
