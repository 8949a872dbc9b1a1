"""`lpzero export BEST_JSON`: a found proxy's formula (or a search's front); no model is built.

It imports `lpzero.report.export` and `lpzero.report.front`, not the report package's plots and
tables (matplotlib, scipy.stats): those are loaded only when asked for (`lpzero.report`).
"""
from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from lpzero.errors import LPZeroError
from lpzero.proxies.found_proxy import FoundProxy
from lpzero.report.export import FORMATS, found_formula
from lpzero.report.export_torch import sympy_srepr, torch_module
from lpzero.report.front import FRONT_FILE, HALL_OF_FAME_FILE, front_text, load_front


#: what `--format` gives besides a formula: a torch module, a sympy srepr string
EXPORTS = ("torch", "sympy")


@click.command()
@click.argument("best_json", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(FORMATS + EXPORTS), default="latex", show_default=True,
              help="A formula (latex, pretty, text), a standalone torch module (torch: `def proxy(A, J, G, H, W, "
                   "S)` over per-layer tensor lists) or a sympy srepr string (sympy).")
@click.pass_context
def export(ctx: click.Context, best_json: str, fmt: str) -> None:
    """Print the simplified formula of a found proxy (best.json), or a search's Pareto front
    (its folder, hall_of_fame.json or pareto_front.json: complexity, search-part ρ, formula)."""
    path = Path(best_json)
    if path.is_dir() or path.name in (HALL_OF_FAME_FILE, FRONT_FILE):
        if ctx.get_parameter_source("fmt") != ParameterSource.DEFAULT:
            best = (path if path.is_dir() else path.parent) / "best.json"
            raise LPZeroError(f"--format {fmt} exports one found proxy: give {best} ({path} prints the search's "
                              "front, as text, without --format)")
        click.echo(front_text(load_front(path)))
        return
    # guards that were active on the search sample are written out, as evolve's report does
    proxy = FoundProxy.load(best_json)
    if fmt == "torch":
        click.echo(torch_module(proxy), nl=False)
    elif fmt == "sympy":
        click.echo(sympy_srepr(proxy))
    else:
        click.echo(found_formula(proxy, fmt))

