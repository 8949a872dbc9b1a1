"""The NAS layer: use a proxy to pick architectures under a budget (`lpzero nas`).

- `space`: the `SearchSpace` interface (integer genomes <-> configs, models, parameter
  counts, the space's own file format) and `SpaceView`, an open space's candidates as a
  `Benchmark`.
- `tabular`: a benchmark's own architectures as a space (`tabular:BENCH`), scored exhaustively.
- `lts_space`: Archai's GPT-2 space with choices read from the LTS benchmark (`lts`); opened by
  name through `spaces.get_space`, which imports it (and transformers) only when asked for.
- `evaluate`: one candidate's costs (parameters, FLOPs, latency), limits and proxy score.
- `nsga`: NSGA-II with DEAP, memoised by architecture, checkpointed every generation.
- `pareto`: Pareto sets, picks under a budget, regret, hypervolume.
- `run`: a search end to end and its files; `report`: tables, the Pareto plot, report.md.
"""
from __future__ import annotations

from .evaluate import COSTS, EvalSettings, ProxySpec, count_flops, evaluate_candidate, measure_latency, proxy_spec
from .nsga import Evaluator, NSGASettings, fitness_class, load_checkpoint, run_nsga
from .pareto import budget_regret, front_hypervolume_ratio, hypervolume_2d, pareto_mask, pick_within
from .run import cached_scores, run_nas, scorer
from .space import NASError, SearchSpace, SpaceView
from .spaces import OPEN_SPACES, SPACE_FORMS, get_space
from .tabular import TabularSpace

__all__ = ["COSTS", "EvalSettings", "Evaluator", "NASError", "NSGASettings", "OPEN_SPACES", "ProxySpec",
           "SPACE_FORMS", "SearchSpace", "SpaceView", "TabularSpace", "budget_regret", "cached_scores",
           "count_flops", "evaluate_candidate", "fitness_class", "front_hypervolume_ratio", "get_space",
           "hypervolume_2d", "load_checkpoint", "measure_latency", "pareto_mask", "pick_within",
           "proxy_spec", "run_nas", "run_nsga", "scorer"]
