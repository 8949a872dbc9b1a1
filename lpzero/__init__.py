"""lpzero: find zero-cost proxies for language-model architecture search, and use them.

Layers, each importing only the ones above it in this list (tests/test_layers.py
checks it):

- `lpzero.errors`, `lpzero.files`, `lpzero.executors`: the error hierarchy, atomic file
  writes, where per-architecture work runs (this process, a process pool, Ray).
- `lpzero.primitives` (folder primitives/): typed ops, the op table, the DEAP
  primitive set.
- `lpzero.benchmarks` (folder benchmarks/): architectures, ground truth, models,
  mini-batches, and where the six proxy inputs live; extracting them.
- `lpzero.proxies`: the hand-designed proxies and their shared forward/backward pass.
- `lpzero.cache`: sampled inputs and baseline values on disk, one file per architecture.
- `lpzero.search`: fitness, RPS, the paper genome, DEAP toolboxes, the loop, a search's runs.
- `lpzero.report`: a search end to end and its files, formulas, guard activity, rank tables.
- `lpzero.nas`: using a proxy: NSGA-II over a search space (LTS GPT-2, LoNAS sub-networks, or a
  benchmark's own architectures) under parameter, FLOP and latency budgets.
- `lpzero.workflows`: each command end to end, one settings object and one function.
- `lpzero.cli`: the `lpzero` command.

`lpzero.score(model, tokenizer_or_batch, proxy)` scores one transformers model with a proxy
(`lpzero.workflows.score.score_model`): what another NAS framework calls as its objective. It is
loaded when first used, so `import lpzero` stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["score"]


def __getattr__(name: str) -> Any:
    if name == "score":
        return importlib.import_module("lpzero.workflows.score").score_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
