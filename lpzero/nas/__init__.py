"""The NAS layer: search a space for architectures with a proxy under budgets (`lpzero nas`).

Only the search: the spaces themselves are declared with their model families
(`lpzero.benchmarks.SearchSpace`, `get_space`), and `lpzero.workflows.nas` runs `lpzero nas`
end to end (opening the space and the proxy, the output folder, the report).

- `evaluate`: one candidate's costs (parameters, FLOPs, latency), limits and proxy score, as a
  `CandidateResult` (`evaluate_candidate`, a toolbox's `evaluate`).
- `nsga`: NSGA-II through a DEAP toolbox (`build_nsga_toolbox`, `run_nsga`), each architecture
  scored once, checkpointed every generation (`NASCheckpoint`); `score_all`, an exhaustive pass.
- `pareto`: Pareto sets, the pick of a search (`pick_candidates`), picks under a budget, regret,
  hypervolume.
"""
from __future__ import annotations

from lpzero.benchmarks import SPACES, NASError, SearchSpace, SpaceView, get_space
from lpzero.benchmarks.tabular import TabularSpace

from .evaluate import (COST_LABELS, COSTS, INVALID, CandidateResult, EvalSettings, count_flops, evaluate_candidate,
                       measure_latency, proxy_spec)
from .nsga import (CHECKPOINT_FILE, NASCheckpoint, NSGAResult, NSGASettings, build_nsga_toolbox, ensure_nas_creator,
                   fitness_class, load_checkpoint, restored_memo, run_nsga, score_all, score_keys)
from .pareto import (Candidate, Pick, budget_regret, candidates_of, front_hypervolume_ratio, hypervolume_2d,
                     pareto_mask, pick_candidates, pick_within, tabular_figures)

__all__ = ["CHECKPOINT_FILE", "COSTS", "COST_LABELS", "Candidate", "CandidateResult", "EvalSettings", "INVALID", "NASCheckpoint",
           "NASError", "NSGAResult", "NSGASettings", "Pick", "SPACES", "SearchSpace", "SpaceView", "TabularSpace",
           "budget_regret", "build_nsga_toolbox", "candidates_of", "count_flops", "ensure_nas_creator",
           "evaluate_candidate", "fitness_class", "front_hypervolume_ratio", "get_space", "hypervolume_2d",
           "load_checkpoint", "measure_latency", "pareto_mask", "pick_candidates", "pick_within", "proxy_spec",
           "restored_memo", "run_nsga", "score_all", "score_keys", "tabular_figures"]
