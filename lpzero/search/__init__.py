"""The search layer: fitness, RPS, the paper genome, DEAP toolboxes, the loop, and one search over benchmarks.

Reads cached inputs (`lpzero.cache`) as `Weighted` values; builds no model. The
toolbox (`build_toolbox`) is an ordinary DEAP `base.Toolbox`, and the loop
(`run_evolution`) uses nothing but its operators, so a research script can re-register
`evaluate`, `mate`, `mutate`, `select` or `map` and run the same loop. `ProxySearch` is one
search (`lpzero evolve`): a list of benchmarks (one is a list of one), its runs, the final
selection, the complexity front and `--select`.
"""
from __future__ import annotations

from .fitness import (COMBINE, INVALID_FITNESS, CombinedEvaluator, Evaluation, FitnessEvaluator, Invalid, correlation,
                      is_valid_fitness, spearman_fitness)
from .genome import GenomeError, PaperGenes
from .loop import (EvolutionState, EvolveSettings, LoopCheckpoint, LoopStatistics, evaluate_all, identity_function,
                   run_evolution)
from .rps import RPSLog, Violation, rps_guard, violations
from .runs import SearchRuns
from .search import ProxySearch, Scored, SearchResult, evolve_on
from .protocol import FINAL_SELECTIONS, SearchPart, SearchSetup, run_seed, search_sample, select_final, split_architectures
from .toolbox import TOOLBOX_KINDS, TOOLBOXES, build_toolbox, ensure_creator, register_operator

__all__ = ["COMBINE", "CombinedEvaluator", "EvolutionState", "EvolveSettings", "Evaluation", "FINAL_SELECTIONS",
           "FitnessEvaluator", "GenomeError", "INVALID_FITNESS", "Invalid", "LoopCheckpoint", "LoopStatistics",
           "PaperGenes", "ProxySearch", "RPSLog", "Scored", "SearchPart", "SearchResult", "SearchRuns", "SearchSetup",
           "TOOLBOXES", "TOOLBOX_KINDS", "Violation", "build_toolbox", "correlation", "ensure_creator", "evaluate_all",
           "evolve_on", "identity_function", "is_valid_fitness", "register_operator", "rps_guard", "run_evolution",
           "run_seed", "search_sample", "select_final", "split_architectures", "spearman_fitness", "violations"]
