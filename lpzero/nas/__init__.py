"""The NAS layer: use a proxy to pick architectures under a budget (`lpzero nas`).

- `space`: the `SearchSpace` interface (integer genomes <-> configs, models, parameter
  counts, the space's own file format) and `SpaceView`, an open space's candidates as a
  `Benchmark`.
- `tabular`: a benchmark's own architectures as a space (`tabular:BENCH`), scored exhaustively.
- `lts_space`: Archai's GPT-2 space with choices read from the LTS benchmark (`lts`); opened by
  name through `spaces.get_space`, which imports it (and transformers) only when asked for.
- `evaluate`: one candidate's costs (parameters, FLOPs, latency), limits and proxy score.
- `nsga`: NSGA-II through a DEAP toolbox (`build_nsga_toolbox`), memoised by architecture,
  checkpointed every generation (`lpzero.checkpoint`).
- `pareto`: Pareto sets, picks under a budget, regret, hypervolume.
- `workflow`: `lpzero nas` end to end (score, pick the front and the chosen candidate, write the
  files); `report`: tables, the Pareto plot, report.md.
"""
from __future__ import annotations

from .evaluate import COSTS, EvalSettings, count_flops, evaluate_candidate, measure_latency, proxy_spec
from .nsga import (Evaluator, NSGASettings, build_nsga_toolbox, ensure_nas_creator, fitness_class, load_checkpoint,
                   run_nsga)
from .pareto import budget_regret, front_hypervolume_ratio, hypervolume_2d, pareto_mask, pick_within
from .space import NASError, SearchSpace, SpaceView
from .spaces import OPEN_SPACES, SPACE_FORMS, get_space
from .tabular import TabularSpace
from .workflow import Pick, cached_scores, candidate_rows, pick_candidates, run_nas, scorer

__all__ = ["COSTS", "EvalSettings", "Evaluator", "NASError", "NSGASettings", "OPEN_SPACES", "Pick",
           "SPACE_FORMS", "SearchSpace", "SpaceView", "TabularSpace", "budget_regret", "build_nsga_toolbox",
           "cached_scores", "candidate_rows", "count_flops", "ensure_nas_creator", "evaluate_candidate",
           "fitness_class", "front_hypervolume_ratio", "get_space", "hypervolume_2d", "load_checkpoint",
           "measure_latency", "pareto_mask", "pick_candidates", "pick_within", "proxy_spec", "run_nas", "run_nsga",
           "scorer"]
