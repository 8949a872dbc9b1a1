"""`lpzero score PATH --proxy P`: one model's proxy score (a checkpoint directory or a config.json)."""
from __future__ import annotations

import click

from lpzero.files import json_text
from lpzero.workflows.score import ScoreRequest, score as run_score

from lpzero.benchmarks.checkpoints import DTYPES

from .options import POSITIVE, default


@click.command()
@click.argument("path", type=click.Path(exists=True))
@click.option("--proxy", "proxy_text", required=True,
              help="A found proxy (best.json or its folder), or a hand-designed proxy's name (-NAME negates it).")
@click.option("--tokenizer", type=click.Path(exists=True, file_okay=False), default=None,
              help="A local tokenizer directory (default: the checkpoint's own, or the config's folder).")
@click.option("--text", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A text file for the mini-batch (default: WikiText-2 valid).")
@click.option("--data", type=click.Path(), default=None, help="Data root (default: $LPZERO_DATA, else ../shared/data).")
@click.option("--dtype", type=click.Choice(DTYPES), default=None,
              help="A checkpoint's dtype (default: its own); a config's models (default: float32).")
@click.option("--batch-size", type=POSITIVE, default=default(ScoreRequest, "batch_size"), show_default=True)
@click.option("--seq-len", type=POSITIVE, default=default(ScoreRequest, "seq_len"), show_default=True,
              help="Tokens per sequence (at most the model's positions).")
@click.option("--batch-seed", type=int, default=0, show_default=True)
@click.option("--model-seed", type=int, default=0, show_default=True, help="Seed of a config's random weights.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda (cuda:N).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def score(path: str, proxy_text: str, as_json: bool, **kw) -> None:
    """Score one model with a proxy: a checkpoint directory or a config.json (seeded random weights)."""
    result = run_score(ScoreRequest(path, proxy_text, **kw))
    if as_json:
        click.echo(json_text(result.to_json(), indent=None))
        return
    model = result.model
    click.echo(f"{result.score:.6g}  {result.proxy['name']} of {model['path']} ({model['model_type']}, "
               f"{model['params']:,} parameters, {model['dtype']}; batch {result.batch[0]} x {result.batch[1]}; "
               f"{result.seconds:.1f} s)")
