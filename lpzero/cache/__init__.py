"""The cache layer: sampled proxy inputs and baseline values on disk, one file per architecture.

`InputCache(CacheSettings.for_benchmark(bench))` names a cache; `compute(ids)` fills
it (`--jobs` processes), `load(ids)` stacks the inputs for fitness. How a tensor is
reduced to K weighted elements is `lpzero.cache.sampling`.
"""
from __future__ import annotations

from .sampling import arch_seed, calibrated_weights, sample_inputs, stack_stored, stratified_index
from .store import (CACHE_THREADS, EXTRACTION_VERSION, CacheSettings, EntryTask, InputCache, compute_entry,
                    default_cache_root)

__all__ = ["CACHE_THREADS", "EXTRACTION_VERSION", "CacheSettings", "InputCache", "arch_seed", "calibrated_weights",
           "EntryTask", "compute_entry", "default_cache_root", "sample_inputs", "stack_stored", "stratified_index"]
