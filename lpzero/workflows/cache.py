"""`lpzero cache` end to end: open a benchmark, check every option, fill its cache.

`CachingRequest` is the command's one settings object; `cache(request)` opens the benchmark, checks
the ids, the batch and the baselines before any work, then computes what the cache lacks
(`lpzero.cache.request.fill_cache`: the six inputs, sampled, and the hand-designed proxies' values)
and returns a `CachingResult`. `lpzero rank` and `lpzero evolve` fill their caches the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from lpzero.benchmarks.selection import BenchmarkRequest
from lpzero.cache import InputCache
from lpzero.cache.request import CacheRequest, Progress, fill_cache, no_progress, proxy_names
from lpzero.executors import ExecutorSettings


@dataclass(frozen=True)
class CachingRequest:
    """Everything `lpzero cache` is told: the benchmark, the cache's settings, the baselines, where work runs."""

    benchmark: BenchmarkRequest
    cache: CacheRequest = field(default_factory=CacheRequest)
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    #: hand-designed proxies to store: all, none, or names
    baselines: str = "all"


@dataclass
class CachingResult:
    """The filled cache and the architectures it holds now."""

    store: InputCache
    ids: list[str]


def cache(request: CachingRequest, progress: Progress = no_progress) -> CachingResult:
    """Fill the cache `request` describes (see the module docstring)."""
    bench = request.benchmark.open()
    store = request.cache.open(bench, request.benchmark.options(), request.benchmark.data)
    ids = request.benchmark.select_ids(bench)
    names = proxy_names(request.baselines)
    fill_cache(store, ids, names, request.executor, request.cache.device, progress)
    return CachingResult(store, ids)


__all__ = ["CachingRequest", "CachingResult", "cache"]
