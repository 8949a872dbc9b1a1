"""The report layer: the files and figures of a result, and formulas.

Nothing here searches or scores models: each module writes what a workflow decided.

- `search`: a search's files (`write_search`: best.json, hall_of_fame.json, pareto_front.json,
  log.csv, plots, report.md) from a `lpzero.search.SearchResult`;
- `results`: reading best.json back (`load_best`, its split, its benchmark);
- `front`: reading and printing a search's complexity front;
- `rank`: `lpzero rank`'s table and files; `nas`: `lpzero nas`'s tables, plot, report and summary;
- `export` (formulas: simplified sympy, LaTeX, text), `export_torch` (a found proxy as a standalone
  torch module, a sympy `srepr`), `protection` (where ops' guards were active), `markdown`, `plots`.
"""
from __future__ import annotations

from .export import (FORMATS, evaluate_expression, format_expression, found_formula, proxy_formula, simplify,
                     tree_to_sympy)
from .markdown import report_text
from .protection import GuardActivity, active_nodes, guard_activity
from .rank import RankRow, format_table, rank_row, write_rank
from .results import (BEST_FILE, PRIMITIVE_SET_VERSION, SPLIT_PARTS, best_baseline, check_benchmark, load_best,
                      split_ids)
from .search import OUTPUTS, default_out, search_records, write_search

__all__ = ["BEST_FILE", "FORMATS", "GuardActivity", "OUTPUTS", "PRIMITIVE_SET_VERSION", "RankRow", "SPLIT_PARTS",
           "active_nodes", "best_baseline", "check_benchmark", "default_out", "evaluate_expression",
           "format_expression", "format_table", "found_formula", "guard_activity", "load_best", "proxy_formula",
           "rank_row", "report_text", "search_records", "simplify", "split_ids", "tree_to_sympy", "write_rank",
           "write_search"]
