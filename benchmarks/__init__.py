"""Benchmarks: trained architectures, ground truth, model builders, mini-batches.

`get_benchmark("gpt2")`, `get_benchmark("flexibert")`, or `get_benchmark("lts:PATH")`
for any results directory in the Archai / LiteTransformerSearch layout.
"""
from __future__ import annotations

import os
from typing import Any

from .base import (
    Architecture,
    Batch,
    Benchmark,
    BenchmarkError,
    Site,
    WeightSite,
    ZCSites,
    default_data_root,
    resolve_data_root,
)

#: registry name -> one-line description (the classes are imported lazily)
BENCHMARKS = {
    "gpt2": "LiteTransformerSearch GPT-2 on WikiText-103, 200 architectures (lts_gpt2_wt103/)",
    "flexibert": "FlexiBERT / NAS-Bench-BERT, 500 architectures, GLUE score (flexibert/)",
    "lts:PATH": "any results directory in the Archai/LTS layout",
}


def get_benchmark(name: str, data: str | os.PathLike | None = None, **options: Any) -> Benchmark:
    """The benchmark registered under `name` (see `BENCHMARKS`).

    `data` is the data root (default: `LPZERO_DATA`, else `../shared/data`).
    `options` go to the benchmark's constructor (e.g. `hidden_size_compat=True`
    for FlexiBERT).
    """
    if name.startswith("lts:"):
        from .lts import LTSBenchmark

        path = name[len("lts:") :]
        root = resolve_data_root(data) if data is not None else default_data_root()
        return LTSBenchmark(path, data_root=root, name=name, **options)
    if name == "gpt2":
        from .lts import LTSBenchmark

        root = resolve_data_root(data)
        return LTSBenchmark(root / "lts_gpt2_wt103", data_root=root, name="gpt2", **options)
    if name == "flexibert":
        from .flexibert import FlexiBERTBenchmark

        root = resolve_data_root(data)
        return FlexiBERTBenchmark(root / "flexibert", data_root=root, **options)
    known = ", ".join(BENCHMARKS)
    raise BenchmarkError(f"unknown benchmark {name!r} (known: {known})")


__all__ = [
    "Architecture",
    "BENCHMARKS",
    "Batch",
    "Benchmark",
    "BenchmarkError",
    "Site",
    "WeightSite",
    "ZCSites",
    "get_benchmark",
]
