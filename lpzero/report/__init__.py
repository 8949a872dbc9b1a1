"""The report layer: a search end to end and its outputs, formulas, guard activity, rank tables.

`run_search` runs a search on cached architectures and writes `best.json`,
`hall_of_fame.json`, `log.csv`, `evolution.png` and `report.md`, recording the op table it
ran with; `load_best` reads a `best.json` back as a dict (`lpzero.proxies.found_proxy.FoundProxy`
is the proxy it holds); `proxy_formula` prints a tree as a simplified formula, `found_formula`
a found proxy's, with its own op table.
"""
from __future__ import annotations

from .export import (FORMATS, evaluate_expression, format_expression, found_formula, proxy_formula, simplify,
                     tree_to_sympy)
from .markdown import report_text
from .protection import GuardActivity, active_nodes, guard_activity
from .rank import (RankRequest, RankRow, format_table, rank, rank_pass_free, rank_row, score_exactly,
                   score_found_exactly, write_rank)
from .results import (BEST_FILE, PRIMITIVE_SET_VERSION, SPLIT_PARTS, best_baseline, check_benchmark, load_best,
                      split_ids)
from .evolve import EvolveRequest, check_resume, evolve, run_search

__all__ = ["BEST_FILE", "EvolveRequest", "RankRequest", "FORMATS", "GuardActivity", "PRIMITIVE_SET_VERSION", "RankRow", "SPLIT_PARTS",
           "active_nodes", "best_baseline", "check_resume", "check_benchmark", "evaluate_expression", "evolve",
           "format_expression", "format_table", "found_formula", "guard_activity", "load_best", "proxy_formula",
           "rank", "rank_pass_free", "rank_row", "score_exactly", "report_text", "run_search", "score_found_exactly", "simplify", "split_ids",
           "tree_to_sympy", "write_rank"]
