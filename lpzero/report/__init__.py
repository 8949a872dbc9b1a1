"""The report layer: the files and figures of a result, and formulas.

Nothing here searches or scores models: each module writes what a workflow decided.

- `search`: a search's files (`write_search`: best.json, hall_of_fame.json, pareto_front.json,
  log.csv, plots, report.md) from a `lpzero.search.SearchResult`;
- `results`: reading best.json back (`load_best`, its split, its benchmark);
- `front`: reading and printing a search's complexity front;
- `rank`: `lpzero rank`'s table and files; `nas`: `lpzero nas`'s tables, plot, report and summary;
- `export` (formulas: simplified sympy, LaTeX, text), `export_torch` (a found proxy as a standalone
  torch module, a sympy `srepr`), `protection` (where ops' guards were active), `markdown`, `plots`.

The names below are loaded from their module when first asked for (PEP 562): `lpzero export` and
`lpzero ops` import `lpzero.report.export`, and must not pay for matplotlib (`plots`) and
scipy.stats (`rank`, `results`, `search`, through `lpzero.search`) on the way.
"""
from __future__ import annotations

from lpzero.lazy import lazy_exports

#: module -> the names this package re-exports from it
_EXPORTS: dict[str, tuple[str, ...]] = {
    "export": ("FORMATS", "evaluate_expression", "format_expression", "found_formula", "proxy_formula", "simplify",
               "tree_to_sympy"),
    "markdown": ("report_text",),
    "protection": ("GuardActivity", "active_nodes", "guard_activity"),
    "rank": ("RankRow", "format_table", "rank_row", "write_rank"),
    "results": ("BEST_FILE", "PRIMITIVE_SET_VERSION", "SPLIT_PARTS", "best_baseline", "check_benchmark", "load_best",
                "split_ids"),
    "search": ("OUTPUTS", "default_out", "search_records", "write_search"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, modules=())
