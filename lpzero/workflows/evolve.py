"""`lpzero evolve` end to end: open the benchmarks, fill their caches, search, write every output.

`EvolveRequest` is the command's one settings object; `evolve(request)` checks it all
before any work (every benchmark, ids, batch, baselines, the op table, --out, a --resume's
checkpoints), fills the caches, runs the search (`lpzero.search.ProxySearch`: one search
over the list of benchmarks, one being a list of one) and writes its files
(`lpzero.report.search.write_search`). It returns an `EvolveResult`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from deap import base

from lpzero.benchmarks.selection import BenchmarkRequest
from lpzero.cache.request import CacheRequest, Progress, fill_cache, no_progress, proxy_names
from lpzero.errors import LPZeroError
from lpzero.executors import ExecutorSettings
from lpzero.files import check_folder, owned_folder, remove_outputs
from lpzero.primitives import DEFAULT_TABLE, Kind, Level, OpTable, op_table, op_table_path, pset_of
from lpzero.primitives.pset import can_build
from lpzero.report.search import OUTPUTS, default_out, write_search
from lpzero.search import ProxySearch, SearchPart, SearchResult, SearchSetup
from lpzero.search.complexity import renamed_select

log = logging.getLogger("lpzero")


@dataclass(frozen=True)
class EvolveRequest:
    """Everything `lpzero evolve` is told: the benchmarks, their cache, the search, where outputs go."""

    #: the benchmarks searched on (one formula; with several, its fitness combines their |ρ| by
    #: `setup.combine`), each with its own options, cache and split
    benchmarks: tuple[BenchmarkRequest, ...]
    cache: CacheRequest = field(default_factory=CacheRequest)
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    setup: SearchSetup = field(default_factory=SearchSetup)
    #: hand-designed proxies cached and compared against (all, none, or names)
    baselines: str = "all"
    #: output folder (None: runs/<benchmark>, several: runs/<first>+<second>...)
    out: str | None = None
    #: continue from the run checkpoints in `out`
    resume: bool = False
    #: the op table searched with (`lpzero.primitives.op_table`: "default", "extended", "module:ATTR", ...)
    ops: str = DEFAULT_TABLE

    def __post_init__(self) -> None:
        if isinstance(self.benchmarks, BenchmarkRequest):  # one benchmark: a list of one
            object.__setattr__(self, "benchmarks", (self.benchmarks,))
        if not self.benchmarks:
            raise LPZeroError("a search needs at least one benchmark")


@dataclass
class EvolveResult:
    """What `lpzero evolve` did: its output folder, the best.json record it wrote, and the search's result."""

    out: Path
    best: dict
    search: SearchResult


def same_benchmark(name: str) -> str:
    """`name` with a `file.py:Class` benchmark's file resolved: one benchmark however its path is spelled."""
    file, sep, cls = name.rpartition(":")
    return f"{Path(file).resolve()}:{cls}" if sep and file.endswith(".py") else name


def checked_table(spec: str, toolbox: str = "typed") -> OpTable:
    """The op table `--ops` names, refused before any work when it cannot be imported, when a new process
    could not read it back from best.json, or when no proxy tree (of the paper `toolbox`'s genome) can be
    built from it."""
    table = op_table(spec)
    op_table_path(table)  # a best.json no new process could read is not worth hours: refused now
    if not can_build(pset_of(table)):
        raise LPZeroError(f"--ops {spec}: no proxy tree can be built from this op table: none of its ops take the "
                          "inputs to one score per architecture (it needs reduce ops, e.g. mean and layer_sum; "
                          f"`lpzero ops --ops {spec}` lists its ops)")
    lacks = paper_genome_lacks(table) if toolbox == "paper" else []
    if lacks:
        raise LPZeroError(f"--ops {spec} with --toolbox paper: the paper's genome needs {', '.join(lacks)}, which "
                          "this op table lacks (--toolbox typed builds any tree the table allows)")
    return table


def paper_genome_lacks(table: OpTable) -> list[str]:
    """What of the paper toolbox's genome `table` lacks: it joins two branches with a binary op on scores,
    each branch lifted to a score by mean and layer_sum."""
    lacks = [name for name in ("mean", "layer_sum") if name not in table]
    if not any(Level.SCALAR in op.levels for op in table.of_kind(Kind.BINARY)):
        lacks.append("a binary op on scores")
    return lacks


def open_parts(request: EvolveRequest) -> list[SearchPart]:
    """Every benchmark of `request`, opened, checked and split (before any work)."""
    parts = []
    for benchmark in request.benchmarks:
        bench = benchmark.open()
        store = request.cache.open(bench, benchmark.options(), benchmark.data)
        parts.append(SearchPart.of_cache(bench, store, benchmark.select_ids(bench), request.setup, request.cache.device))
    if len({same_benchmark(p.name) for p in parts}) < len(parts):
        raise LPZeroError(f"--benchmark names a benchmark twice: {', '.join(p.name for p in parts)}")
    return parts


def evolve(request: EvolveRequest, progress: Progress = no_progress,
           customize: Callable[[base.Toolbox], None] | None = None) -> EvolveResult:
    """Run the search `request` describes and write its outputs (see the module docstring).

    `customize(toolbox)`, if given, re-registers DEAP operators on each run's toolbox before its
    loop (a research script's own `mate`, `mutate`, `select`: `scripts/custom_operators.py`).
    """
    table = checked_table(request.ops, request.setup.toolbox)
    parts = open_parts(request)
    names = proxy_names(request.baselines)
    setup = request.setup
    if setup.normalize == "hand-designed" and len(parts) > 1 and not names:
        raise LPZeroError("--normalize hand-designed divides each benchmark's |ρ| by its best hand-designed "
                          "proxy's: leave --baselines at its default (all) or name some")
    note = renamed_select(setup.select)
    if note:
        log.warning(note)
    out = Path(request.out) if request.out else default_out([p.name for p in parts])
    search = ProxySearch(parts, setup, out, table)
    for part in parts:  # a cache that cannot be made fails now, not once --out is taken and models are built
        check_folder(part.cache.dir)
    with owned_folder(out, "evolve"):  # before any work: an unwritable, busy or another command's --out fails now
        if request.resume:  # before the caches are filled
            search.check_resume()
            if not search.checkpoints():
                log.warning("--resume: no checkpoint in %s; starting a new search", out)
        remove_outputs(out, OUTPUTS)  # a run that stops early must not leave another run's best.json
        for part in parts:
            fill_cache(part.cache, part.ids, names, request.executor, request.cache.device, progress)
        total = setup.runs * setup.evolve.iterations
        stage = f"evolving ({setup.runs} runs)" if setup.runs > 1 else "evolving"
        runs = search.run(request.resume, lambda done, best: progress(stage, done, total, f"best={best:.3f}"),
                          customize)
        result = search.conclude(runs)
        best = write_search(out, result)
    return EvolveResult(out, best, result)


__all__ = ["EvolveRequest", "EvolveResult", "checked_table", "evolve", "open_parts", "paper_genome_lacks",
           "same_benchmark"]
