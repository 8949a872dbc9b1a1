"""Scoring proxies exactly on a benchmark's architectures: a freshly built model each, on an executor.

Hand-designed proxies are usually read from the cache (computed once per architecture by
`lpzero cache`); a found proxy (`best.json`) and a parameter count are scored exactly, here: per
architecture one model, one forward/backward pass for every proxy (`lpzero.proxies.score_proxies`),
the architectures spread over an executor (`lpzero.executors`). `lpzero rank` and `lpzero nas`
both score this way.
"""
from __future__ import annotations

from typing import Callable, Sequence

from lpzero.benchmarks.inputs import SYMBOLS
from lpzero.cache import CacheSettings
from lpzero.errors import LPZeroError
from lpzero.executors import Executor, LocalExecutor, TaskFailure
from lpzero.proxies import HAND_DESIGNED, FoundProxy, Proxy, ProxyContext, ProxyResult, declare_inputs, score_proxies


def score_architecture(arch_id: str, settings: CacheSettings, proxies: Sequence[Proxy],
                       device: str) -> dict[str, ProxyResult]:
    """Each proxy's result on one architecture: one model, one forward/backward pass for all of them."""
    bench = settings.open_benchmark()
    if all(p.pass_free for p in proxies):
        batch = bench.make_batch(settings.batch_seed, 1, 1)  # parameter counts read no batch
    else:
        batch = bench.make_batch(settings.batch_seed, settings.batch_size, settings.seq_len).to(device)
    ctx = ProxyContext(bench, arch_id, settings.model_seed, batch, device)
    if any(p.inputs_needed for p in proxies):
        declare_inputs(ctx, SYMBOLS)  # all six, as the cache extracts them
    return score_proxies(proxies, ctx, strict=True)


def score_exactly(proxies: Sequence[Proxy], settings: CacheSettings, ids: Sequence[str], device: str,
                  executor: Executor | None = None, progress: Callable[[str], None] | None = None
                  ) -> dict[str, list[ProxyResult]]:
    """Each proxy's results on `ids` (in `ids` order), by proxy name, from freshly built models.

    The architectures run on `executor` (default: this process); `progress(arch_id)` after each.
    A proxy that raises fails its architecture, and the failures are named together (LPZeroError).
    """
    if len({p.name for p in proxies}) != len(proxies):
        raise LPZeroError(f"proxies ranked together need distinct names: {', '.join(p.name for p in proxies)}")
    by_arch: dict[str, dict[str, ProxyResult]] = {}
    failures = []
    for arch_id, result in (executor or LocalExecutor()).imap_unordered(score_architecture, list(ids), settings,
                                                                        list(proxies), device):
        if isinstance(result, TaskFailure):
            failures.append(result)
        else:
            by_arch[arch_id] = result
        if progress:
            progress(arch_id)
    if failures:
        named = "; ".join(f"{f.item}: {f.error}" for f in failures[:5])
        raise LPZeroError(f"scoring failed on {len(failures)} of {len(ids)} architecture(s): {named}")
    return {p.name: [by_arch[a][p.name] for a in ids] for p in proxies}


def rank_pass_free(names: Sequence[str], settings: CacheSettings, ids: Sequence[str], device: str,
                   executor: Executor | None = None) -> tuple[list[list[float]], list[list[float]]]:
    """Values and seconds of pass-free baselines per name (in `ids` order), computed without the cache."""
    results = score_exactly([HAND_DESIGNED.get(n) for n in names], settings, ids, device, executor)
    return ([[r.value for r in results[n]] for n in names], [[r.seconds for r in results[n]] for n in names])


def score_found_exactly(found: Sequence[dict | FoundProxy], settings: CacheSettings, ids: Sequence[str],
                        device: str, executor: Executor | None = None, progress: Callable[[str], None] | None = None
                        ) -> tuple[list[list[float]], list[float]]:
    """Scores of found proxies (`FoundProxy` or `best.json` records) from full inputs, and seconds per architecture.

    `score_exactly` for found proxies. Returns one list of scores per proxy, in `ids` order,
    and per architecture what scoring them all took (the shared pass once, each proxy's arithmetic).
    """
    proxies = [p if isinstance(p, FoundProxy) else FoundProxy.from_best(p, name=f"found {i}")
               for i, p in enumerate(found)]
    results = score_exactly(proxies, settings, ids, device, executor, progress)
    per_arch = list(zip(*results.values())) if proxies else [() for _ in ids]
    seconds = [max((r.pass_seconds for r in rs), default=0.0) + sum(r.seconds - r.pass_seconds for r in rs)
               for rs in per_arch]
    return [[r.value for r in results[p.name]] for p in proxies], seconds


__all__ = ["rank_pass_free", "score_architecture", "score_exactly", "score_found_exactly"]
