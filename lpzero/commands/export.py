"""`lpzero export BEST_JSON` and `lpzero ops`: a found proxy's formula, and the op table; no model is built."""
from __future__ import annotations

import click

from lpzero.primitives import op_table
from lpzero.primitives.registry import markdown_table
from lpzero.proxies.found_proxy import FoundProxy
from lpzero.report.export import FORMATS, found_formula


@click.command()
@click.argument("best_json", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="latex", show_default=True)
def export(best_json: str, fmt: str) -> None:
    """Print the simplified formula of a found proxy (best.json)."""
    # guards that were active on the search sample are written out, as evolve's report does
    click.echo(found_formula(FoundProxy.load(best_json), fmt))


@click.command()
@click.option("--ops", "table", default="default", show_default=True,
              help="The op table: default, an `lpzero.ops` entry point, module:ATTR or file.py:ATTR.")
def ops(table: str) -> None:
    """Print the primitive op table (Markdown)."""
    click.echo(markdown_table(op_table(table)))
