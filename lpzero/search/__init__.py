"""The search layer: fitness, RPS, the paper genome, DEAP toolboxes, the loop, and one search over benchmarks.

Reads cached inputs (`lpzero.cache`) as `Weighted` values; builds no model. The
toolbox (`build_toolbox`) is an ordinary DEAP `base.Toolbox`, and the loop
(`run_evolution`) uses nothing but its operators, so a research script can re-register
`evaluate`, `mate`, `mutate`, `select` or `map` and run the same loop. `ProxySearch` is one
search (`lpzero evolve`): a list of benchmarks (one is a list of one), its runs, the final
selection, the complexity front and `--select`.

The names below are loaded from their module when first asked for (PEP 562): importing one module
of the package (`lpzero.search.rps`) runs only the imports that module needs, not every module's
(scipy.stats among them).
"""
from __future__ import annotations

from lpzero.lazy import lazy_exports

#: module -> the names this package re-exports from it
_EXPORTS: dict[str, tuple[str, ...]] = {
    "fitness": ("COMBINE", "INVALID_FITNESS", "NORMALIZATIONS", "CombinedEvaluator", "Evaluation", "FitnessEvaluator", "Invalid",
                "correlation", "is_valid_fitness", "spearman_fitness"),
    "genome": ("GenomeError", "PaperGenes"),
    "loop": ("EvolutionState", "EvolveSettings", "LoopCheckpoint", "LoopStatistics", "evaluate_all",
             "identity_function", "run_evolution"),
    "rps": ("RPSLog", "Violation", "rps_guard", "violations"),
    "runs": ("SearchRuns",),
    "search": ("ProxySearch", "Scored", "SearchResult", "evolve_on"),
    "protocol": ("FINAL_SELECTIONS", "SearchPart", "SearchSetup", "best_baseline", "hand_designed_scale", "run_seed",
                 "search_sample", "select_final", "split_architectures"),
    "toolbox": ("TOOLBOX_KINDS", "TOOLBOXES", "build_toolbox", "ensure_creator", "register_operator"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, modules=("complexity",))
