"""`lpzero ops`: the primitive op table as Markdown; it imports the op table alone (no sympy, no proxies)."""
from __future__ import annotations

import click

from lpzero.primitives import op_table
from lpzero.primitives.op import markdown_table


@click.command()
@click.option("--ops", "table", default="default", show_default=True,
              help="The op table: default, an `lpzero.ops` entry point, module:ATTR or file.py:ATTR.")
def ops(table: str) -> None:
    """Print the primitive op table (Markdown)."""
    click.echo(markdown_table(op_table(table)))
