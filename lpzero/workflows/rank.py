"""`lpzero rank` end to end: how well each proxy ranks a benchmark's architectures.

`RankRequest` is the command's one settings object; `rank(request)` checks it all before any
work (the benchmark, ids, batch, every best.json, the split, the proxies' names, the output
folder), then scores: hand-designed proxies from the cache (computed once per architecture by
`lpzero cache`), parameter counts and found proxies exactly from the models
(`lpzero.workflows.exact`). It writes the table's files (`lpzero.report.rank.write_rank`) and
returns a `RankResult`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from lpzero.benchmarks import Benchmark, folder_name
from lpzero.benchmarks.selection import BenchmarkRequest, check_measured
from lpzero.cache import InputCache
from lpzero.cache.request import CacheRequest, Progress, fill_cache, no_progress, proxy_names
from lpzero.errors import LPZeroError
from lpzero.executors import ExecutorSettings
from lpzero.files import check_folder, owned_folder, remove_outputs
from lpzero.proxies import HAND_DESIGNED, FoundProxy
from lpzero.report.rank import RANK_FILES, RankRow, rank_row, write_rank
from lpzero.report.results import check_benchmark, found_on, split_ids

from .exact import rank_pass_free, score_found_exactly

log = logging.getLogger("lpzero")


@dataclass(frozen=True)
class RankRequest:
    """Everything `lpzero rank` is told: the benchmark, its cache, the proxies, where the table goes."""

    benchmark: BenchmarkRequest
    cache: CacheRequest = field(default_factory=CacheRequest)
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    #: hand-designed proxies: all, none, or names
    proxies: str = "all"
    #: found proxies: best.json files or their folders, scored exactly from the models
    found: tuple[str, ...] = ()
    #: output folder (None: runs/rank/<benchmark>)
    out: str | None = None
    plots: bool = True
    #: "all", or the part ("search", "heldout") of the one found proxy's split to score
    split: str = "all"


@dataclass
class RankResult:
    """The table's rows (hand-designed proxies in the order asked, then found ones), its folder, and the
    benchmark's own metric (what its ground truth is)."""

    rows: list[RankRow]
    out: Path
    raw_metric: str


def unique_names(proxies: list[FoundProxy]) -> list[FoundProxy]:
    """Found proxies with distinct row names: one named like another is named by its path instead."""
    names = [p.name for p in proxies]
    return [p if names.count(p.name) == 1 else FoundProxy.load(p.source, name=f"found:{p.source}") for p in proxies]


def rank(request: RankRequest, progress: Progress = no_progress) -> RankResult:
    """Rank the benchmark's architectures by each proxy (see the module docstring)."""
    bench = request.benchmark.open()
    store = request.cache.open(bench, request.benchmark.options(), request.benchmark.data)
    ids = request.benchmark.select_ids(bench)
    found = unique_names([FoundProxy.load(path) for path in request.found])
    if request.split != "all":
        if len(found) != 1:
            raise LPZeroError("--split needs exactly one --proxy (the run whose split it is)")
        check_benchmark(found[0], bench.name, found[0].source)
        ids = split_ids(found[0], request.split, ids, bench.name)
    for proxy in found:
        if proxy.found_on is not None and bench.name not in found_on(proxy):
            log.warning("%s was found on %r, ranked here on %r", proxy.source, proxy.found_on, bench.name)
    found = [proxy.on_benchmark(bench.name) for proxy in found]
    names = proxy_names(request.proxies)
    check_measured(bench, ids, "rank")
    if any(not HAND_DESIGNED.get(n).pass_free for n in names):  # a cache that cannot be made fails now
        check_folder(store.dir)
    out = Path(request.out) if request.out else Path("runs") / "rank" / folder_name(bench.name)
    with owned_folder(out, "rank"):  # before any work: an unwritable, busy or another command's --out fails now
        remove_outputs(out, [*RANK_FILES, *(p.name for p in out.glob("rank_*.png"))])
        rows = _rank(request, bench, store, ids, names, found, out, progress)
    return RankResult(rows, out, bench.raw_metric)


def _rank(request: RankRequest, bench: Benchmark, store: InputCache, ids: list[str], names: list[str],
          found: list[FoundProxy], out: Path, progress: Progress) -> list[RankRow]:
    """Score, rank and write the table (the benchmark and every option already checked)."""
    truth = [bench.architecture(a).ground_truth for a in ids]
    # parameter counts need no forward pass: computed directly, without building the cache
    free = [n for n in names if HAND_DESIGNED.get(n).pass_free]
    cached = [n for n in names if n not in free]
    rows: dict[str, RankRow] = {}
    if cached:
        fill_cache(store, ids, cached, request.executor, request.cache.device, progress)
        infos = [store.info(a) for a in ids]
        for n in cached:
            rows[n] = rank_row(n, [i["baselines"][n] for i in infos], truth, [i["seconds"][n] for i in infos])
    with request.executor.make() as executor:
        if free:
            values, seconds = rank_pass_free(free, store.settings, ids, request.cache.device, executor)
            rows.update({n: rank_row(n, v, truth, s) for n, v, s in zip(free, values, seconds)})
        if found:  # one forward/backward pass per architecture for all found proxies
            stage = f"scoring {len(found)} found prox{'y' if len(found) == 1 else 'ies'}"
            done = iter(range(1, len(ids) + 1))
            scores, secs = score_found_exactly(found, store.settings, ids, request.cache.device, executor,
                                               lambda a: progress(stage, next(done), len(ids)))
    table = [rows[n] for n in names] + ([rank_row(p.name, v, truth, secs) for p, v in zip(found, scores)]
                                        if found else [])
    write_rank(table, ids, truth, out, plots=request.plots)
    return table


__all__ = ["RankRequest", "RankResult", "rank", "unique_names"]
