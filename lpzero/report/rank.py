"""`lpzero rank`: how well each proxy ranks a benchmark's architectures.

Hand-designed proxies are read from the cache (computed once per architecture by
`lpzero cache`); a found proxy (`best.json`) and a parameter count are scored exactly,
by `score_exactly`: per architecture one freshly built model, one forward/backward pass
for every proxy, `lpzero.proxies.score_proxies`. Sign convention: ground truth is
oriented higher = better (for GPT-2, minus perplexity), so a proxy that ranks in reverse
shows a negative ρ.
"""
from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from lpzero.benchmarks import Benchmark, folder_name
from lpzero.benchmarks.inputs import SYMBOLS
from lpzero.benchmarks.selection import BenchmarkRequest, measured
from lpzero.cache import CacheSettings, InputCache
from lpzero.cache.request import CacheRequest, Progress, fill_cache, no_progress, proxy_names
from lpzero.errors import LPZeroError
from lpzero.executors import Executor, ExecutorSettings, LocalExecutor, TaskFailure
from lpzero.files import atomic_write_json, atomic_write_text, owned_folder, remove_outputs
from lpzero.proxies import HAND_DESIGNED, Proxy, ProxyContext, ProxyResult, declare_inputs, score_proxies
from lpzero.proxies.found_proxy import FoundProxy
from lpzero.search import correlation

from .plots import plot_ranks
from .results import check_benchmark, found_on, split_ids

log = logging.getLogger("lpzero")

#: the files `write_rank` writes (and one rank_<proxy>.png per proxy)
RANK_FILES = ("rank.csv", "rank.json", "scores.json")
RANK_FIELDS = ("proxy", "spearman", "kendall", "seconds_per_arch", "n", "invalid_reason")


@dataclass
class RankRow:
    """One proxy's line of the table; `invalid_reason` says why ρ is missing (constant or non-finite scores)."""

    proxy: str
    spearman: float | None
    kendall: float | None
    seconds_per_arch: float
    n: int
    scores: list[float]
    invalid_reason: str | None = None


def rank_row(name: str, scores: Sequence[float], truth: Sequence[float], seconds: Sequence[float]) -> RankRow:
    """A proxy's ρ, τ and mean seconds per architecture."""
    m = correlation(scores, truth)
    return RankRow(name, m["spearman"], m["kendall"], float(np.mean(seconds)) if len(seconds) else 0.0, m["n"],
                   list(map(float, scores)), m["invalid_reason"] if m["spearman"] is None else None)


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


def write_rank(rows: list[RankRow], ids: Sequence[str], truth: Sequence[float], out: Path, plots: bool = True) -> None:
    """rank.csv, rank.json, scores.json (and a rank plot per proxy) in `out`."""
    records = [{k: getattr(r, k) for k in RANK_FIELDS} for r in rows]
    text = io.StringIO()
    w = csv.DictWriter(text, fieldnames=RANK_FIELDS)
    w.writeheader()
    w.writerows(records)
    atomic_write_text(out / "rank.csv", text.getvalue())
    atomic_write_json(out / "rank.json", records)
    atomic_write_json(out / "scores.json", {"ids": list(ids), "ground_truth": list(map(float, truth)),
                                            "scores": {r.proxy: r.scores for r in rows}}, indent=None)
    if plots:
        for r in rows:
            safe = r.proxy.replace(":", "_").replace("/", "_")
            plot_ranks(r.proxy, r.scores, truth, r.spearman, out / f"rank_{safe}.png")


def format_table(rows: list[RankRow], raw_metric: str) -> str:
    lines = [f"{'proxy':<24} {'spearman':>9} {'kendall':>9} {'s/arch':>8} {'n':>5}"]
    for r in rows:
        rho = "invalid" if r.spearman is None else f"{r.spearman:+.3f}"
        tau = "" if r.kendall is None else f"{r.kendall:+.3f}"
        why = f"  ({r.invalid_reason})" if r.spearman is None and r.invalid_reason else ""
        lines.append(f"{r.proxy:<24} {rho:>9} {tau:>9} {r.seconds_per_arch:>8.3f} {r.n:>5}{why}")
    lines.append(f"(ρ, τ against ground truth oriented higher = better; raw metric: {raw_metric})")
    return "\n".join(lines)


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


def unique_names(proxies: list[FoundProxy]) -> list[FoundProxy]:
    """Found proxies with distinct row names: one named like another is named by its path instead."""
    names = [p.name for p in proxies]
    return [p if names.count(p.name) == 1 else FoundProxy.load(p.source, name=f"found:{p.source}") for p in proxies]


def rank(request: RankRequest, progress: Progress = no_progress) -> tuple[list[RankRow], Path, str]:
    """Rank the benchmark's architectures by each proxy: (rows, output folder, the ground truth's metric).

    Everything is checked before any work: the benchmark, ids, batch, every best.json, the
    split, the proxies' names and the output folder.
    """
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
    unmeasured = [a for a in ids if not measured(bench.architecture(a))]
    if unmeasured:
        raise LPZeroError(f"{bench.name}: {len(unmeasured)} of {len(ids)} architectures have no ground truth "
                          f"({', '.join(unmeasured[:3])}{', ...' if len(unmeasured) > 3 else ''}); rank needs it "
                          "(select measured ones with --ids; nas needs none)")
    out = Path(request.out) if request.out else Path("runs") / "rank" / folder_name(bench.name)
    with owned_folder(out):  # before any work: an unwritable or busy --out fails now
        remove_outputs(out, [*RANK_FILES, *(p.name for p in out.glob("rank_*.png"))])
        return _rank(request, bench, store, ids, names, found, out, progress), out, bench.raw_metric


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
