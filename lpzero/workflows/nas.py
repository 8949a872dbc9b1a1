"""`lpzero nas` end to end: open a space and a proxy, score its candidates, pick, write the outputs.

`NASRequest` is the command's one settings object. `nas(request)` opens the space and the
proxy, checks the options against each other (tabular-only options on an open space, an
adapter on a non-LoNAS space, limits and costs), decides where scores come from, and runs
`run_nas`:

- an open space (LTS, LoNAS, `module:Class`): every candidate is built and scored exactly;
- a tabular space with a found proxy: exactly from the models, or from the cache's samples
  with `cached_scores` (what the search's fitness read);
- a tabular space with a hand-designed proxy: from the cache (a parameter count, directly).

`run_nas(space, proxy, ...)` searches an open space: a space that lists all its architectures
(tabular) is scored exhaustively, any other with NSGA-II (`lpzero.nas.run_nsga`); both through one
DEAP toolbox whose `evaluate` is `lpzero.nas.evaluate_candidate` and whose `map` is the executor's,
checkpointed so that `resume` continues where a run stopped. `lpzero.nas.pick_candidates` decides
the front and the chosen candidate; `lpzero.report.nas` writes them.
"""
from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from lpzero.benchmarks import Benchmark, NASError, SearchSpace, folder_name, get_space
from lpzero.benchmarks.selection import BenchmarkRequest
from lpzero.benchmarks.tabular import PREFIX as TABULAR_PREFIX
from lpzero.cache import InputCache
from lpzero.cache.request import CacheRequest, Progress, fill_cache, no_progress
from lpzero.errors import LPZeroError
from lpzero.executors import Executor, ExecutorSettings, LocalExecutor
from lpzero.files import owned_folder, remove_outputs
from lpzero.nas import (CHECKPOINT_FILE, EvalSettings, NASCheckpoint, NSGASettings, build_nsga_toolbox,
                        candidates_of, evaluate_candidate, load_checkpoint, pick_candidates, proxy_spec, restored_memo,
                        run_nsga, score_all)
from lpzero.proxies import FoundProxy, Proxy
from lpzero.report.nas import OUTPUTS, nas_summary, write_nas
from lpzero.search import FitnessEvaluator

from .exact import rank_pass_free

log = logging.getLogger("lpzero")


@dataclass(frozen=True)
class NASRequest:
    """Everything `lpzero nas` is told.

    `space.name` is the `--space` text; its other fields are the benchmark options
    (`--data`, `--adapter`, `--hidden-size-compat`) and, for a tabular space only, the
    architecture selection (`--limit`, `--ids`).
    """

    space: BenchmarkRequest
    #: a found proxy (best.json or its folder), or a hand-designed proxy's name (-NAME negates it)
    proxy: str
    costs: tuple[str, ...] = ("params",)
    #: cost -> upper limit
    limits: dict = field(default_factory=dict)
    #: sequence length of the FLOPs and latency pass (None: the benchmark's default)
    cost_seq_len: int | None = None
    nsga: NSGASettings = field(default_factory=NSGASettings)
    cache: CacheRequest = field(default_factory=CacheRequest)
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    #: tabular: score a found proxy on the cache's samples instead of building every model
    cached_scores: bool = False
    #: output folder (None: runs/nas/<space>)
    out: str | None = None
    resume: bool = False

    def checked_costs(self) -> tuple[tuple[str, ...], dict]:
        """(costs, limits), refused in one line when a cost repeats or a limit is not a number."""
        if len(set(self.costs)) != len(self.costs):
            raise LPZeroError(f"--cost {','.join(self.costs)}: a cost is named twice")
        for name, value in self.limits.items():
            if not math.isfinite(value):
                raise LPZeroError(f"--max-{name} {value}: a limit must be a finite number")
        return self.costs, dict(self.limits)


@dataclass
class NASResult:
    """What `lpzero nas` did: its output folder and the summary it wrote (`summary.json`)."""

    out: Path
    summary: dict


def _open_space(request: NASRequest) -> tuple[SearchSpace, dict]:
    """The space and the benchmark options it was opened with (tabular-only options refused elsewhere)."""
    name, given = request.space.name, request.space
    if name.startswith(TABULAR_PREFIX):
        bench_request = replace(given, name=name[len(TABULAR_PREFIX):])
        bench = bench_request.open() if given.selects() else None
        ids = bench_request.select_ids(bench) if bench is not None else None
        options = bench_request.options()
        return get_space(name, given.data, options, ids), options
    if given.hidden_size_compat:
        raise LPZeroError("--hidden-size-compat applies to a tabular:flexibert space only")
    if given.selects():
        raise LPZeroError("--limit and --ids select architectures of a tabular space only")
    if request.cached_scores:
        raise LPZeroError("--cached-scores applies to a tabular space only (an open space's candidates are not cached)")
    if given.adapter is not None and not name.startswith("lonas:"):
        raise LPZeroError("--adapter applies to lonas:CHECKPOINT spaces only")
    # the space's benchmark options: --space lonas is lonas-mini's space
    options = replace(given, name="lonas-mini" if name == "lonas" else name).options()
    return get_space(name, given.data, options), options


def nas(request: NASRequest, progress: Progress = no_progress) -> NASResult:
    """Run the architecture search `request` describes (see the module docstring)."""
    proxy = proxy_spec(request.proxy)  # a malformed best.json fails before any work
    costs, limits = request.checked_costs()
    space, options = _open_space(request)
    base = request.space.checked(space.base_benchmark())  # an LTS directory of another model family: refused now
    longest = base.max_seq_len()
    if request.cost_seq_len is not None and longest is not None and request.cost_seq_len > longest:
        raise LPZeroError(f"--cost-seq-len {request.cost_seq_len}: the models of {base.name} have {longest} positions")
    if isinstance(proxy, FoundProxy):
        proxy = proxy.on_benchmark(base.name)  # of a search on several benchmarks: this one's orientation
    if proxy.found_on not in (None, base.name):
        log.warning("%s was found on %r, used here on %r", proxy.source, proxy.found_on, base.name)
    s = request.cache.settings(base, options, request.space.data)  # the batch candidates are scored on
    settings = EvalSettings(s.batch_size, s.seq_len, s.batch_seed, s.model_seed, request.cache.device, costs, limits,
                            request.cost_seq_len or base.default_seq_len)
    out = Path(request.out) if request.out else Path("runs") / "nas" / folder_name(space.name)
    with owned_folder(out, "nas"):  # before any work: an unwritable, busy or another command's --out fails now
        if request.resume:  # a checkpoint of another space, selection or fewer generations: refused before any work
            check_resume(space, proxy, settings, request.nsga, out)
            if not (out / CHECKPOINT_FILE).is_file():
                log.warning("--resume: no checkpoint in %s; starting a new search", out)
        given, note = _given_scores(request, proxy, space, base, options, progress)
        total = len(space.all_genomes() or []) or request.nsga.population * (request.nsga.generations + 1)
        stage = f"nas {space.name}"
        with request.executor.make() as executor:
            summary = run_nas(space, proxy, settings, request.nsga, out, executor, resume=request.resume, given=given,
                              scores_note=note or settings_note(settings),
                              progress=lambda n: progress(stage, n, total))
    return NASResult(out, summary)


def settings_note(settings: EvalSettings) -> str:
    """How exact scores were computed (the report's line)."""
    return f"exact ({settings.batch_size} x {settings.seq_len} batch, model seed {settings.model_seed})"


def cached_scores(cache: InputCache, ids: list[str], proxy: Proxy) -> dict[str, float]:
    """Proxy scores of a benchmark's architectures from a filled cache.

    A baseline's value is the one the cache stored (computed from the full model); a found
    proxy's tree is evaluated on the cached samples (what the search's fitness reads), with
    the primitive set of its own op table.
    """
    if not isinstance(proxy, FoundProxy):
        return {a: proxy.orientation * float(cache.info(a)["baselines"][proxy.name]) for a in ids}
    evaluator = FitnessEvaluator(proxy.pset, cache.load(list(ids)), np.zeros(len(ids)))
    values = evaluator.scores(proxy.parsed)
    return {a: proxy.orientation * float(v) for a, v in zip(ids, values)}


def _given_scores(request: NASRequest, proxy: Proxy, space: SearchSpace, base: Benchmark, options: dict,
                  progress: Progress) -> tuple[dict[str, float] | None, str | None]:
    """Scores a tabular space takes from elsewhere than its models, and how they were computed:
    a parameter count directly, a hand-designed proxy from the cache, a found proxy on the cache's
    samples (`--cached-scores`). (None, None): every candidate is scored exactly."""
    found = isinstance(proxy, FoundProxy)
    if not space.name.startswith(TABULAR_PREFIX) or (found and not request.cached_scores):
        return None, None
    ids = space.ids
    store = request.cache.open(base, options, request.space.data)
    if not found and proxy.pass_free:
        with request.executor.make() as executor:
            values, _ = rank_pass_free([proxy.name], store.settings, ids, request.cache.device, executor)
        return {a: proxy.orientation * v for a, v in zip(ids, values[0])}, "exact (a parameter count)"
    fill_cache(store, ids, [] if found else [proxy.name], request.executor, request.cache.device, progress)
    note = (f"on the cache's samples ({store.settings.samples} per tensor, {store.dir})" if found else
            f"from the cache {store.dir}")
    return cached_scores(store, ids, proxy), note


def nas_record(space: SearchSpace, proxy: Proxy, settings: EvalSettings, nsga: NSGASettings, scores_note: str,
               genomes: list[list[int]] | None) -> dict:
    """What decides a search's result, as its checkpoint records it: a resume must have the same (but more
    generations). The space is its name, the `fingerprint` of its data, and for an exhaustive pass the
    architectures it scores (a changed `--ids` / `--limit`)."""
    record = {"nsga": None if genomes is not None else asdict(nsga), "space": space.name,
              "fingerprint": space.fingerprint(), "proxy": proxy.record(), "settings": settings.record(),
              "scores": scores_note}
    if genomes is not None:
        keys = [space.key(space.decode(g)) for g in genomes]
        record["architectures"] = {"count": len(keys), "sha1": hashlib.sha1("\n".join(keys).encode()).hexdigest()[:16]}
    return record


def check_resume(space: SearchSpace, proxy: Proxy, settings: EvalSettings, nsga: NSGASettings, out: Path) -> None:
    """ResultError, before any work, if `out`'s checkpoint belongs to a run `run_nas` would refuse to resume
    (how scores are computed, "scores", is checked by `run_nas`: it is known once a cache is opened)."""
    checkpoint = Path(out) / CHECKPOINT_FILE
    if checkpoint.is_file():
        load_checkpoint(checkpoint, nas_record(space, proxy, settings, nsga, "", space.all_genomes()), ("scores",))


def run_nas(space: SearchSpace, proxy: Proxy, settings: EvalSettings, nsga: NSGASettings, out: Path,
            executor: Executor | None = None, resume: bool = False, given: dict[str, float] | None = None,
            scores_note: str = "exact", progress: Callable[[int], None] | None = None) -> dict:
    """Search `space` for architectures with a high proxy score and low costs; write the outputs to `out`.

    `given`: precomputed scores by key (tabular spaces, from a cache), described by `scores_note`.
    `progress(n)` is called with the number of candidates scored so far (checkpointed ones included).
    Returns the summary (also written to `summary.json`); NASError, after candidates.csv and summary.json
    are written, if no candidate is within the limits with a valid score.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # the previous run's results go first (its checkpoint stays for --resume): a run that stops
    # early must not leave another run's summary beside its own files
    remove_outputs(out, OUTPUTS if resume else (*OUTPUTS, CHECKPOINT_FILE))
    smallest = space.smallest()
    limit = settings.limits.get("params")
    if limit is not None and smallest is not None:
        least = space.count_params(smallest)["total"]
        if least > limit:
            raise NASError(f"--max-params {limit:,.0f} is below the smallest architecture of space {space.name} "
                           f"({least:,} parameters)")
    genomes = space.all_genomes()
    checkpoint = NASCheckpoint(out / CHECKPOINT_FILE, nas_record(space, proxy, settings, nsga, scores_note, genomes),
                               resume)
    toolbox = build_nsga_toolbox(space, nsga, len(settings.costs),
                                 partial(evaluate_candidate, space=space, proxy=proxy, settings=settings, given=given))
    toolbox.register("map", (executor or LocalExecutor()).map)
    saved = checkpoint.saved()  # refused now if it belongs to another search
    restored = len(restored_memo(saved)) if saved is not None else 0
    if restored and progress is not None:
        progress(restored)
    t = time.perf_counter()
    if genomes is not None:
        search = f"exhaustive ({len(genomes)} architectures)"
        memo = score_all(toolbox, [space.key(space.decode(g)) for g in genomes], checkpoint, progress)
    else:
        search = (f"NSGA-II, population {nsga.population}, {nsga.generations} generations, seed {nsga.seed} "
                  f"(crossover {nsga.crossover}, mutation {nsga.mutation})")
        memo = run_nsga(toolbox, nsga, settings.costs, checkpoint, progress=progress).memo
    seconds = time.perf_counter() - t
    picked = pick_candidates(candidates_of(space, memo), settings.costs)
    summary = nas_summary(space, proxy, settings, picked, search, scores_note, len(memo) - restored, seconds)
    write_nas(out, space, proxy, settings, picked, summary)
    if picked.chosen is None:
        raise NASError(f"space {space.name}: none of the {len(picked.candidates)} candidates scored is within the "
                       "limits with a valid score (see candidates.csv)")
    return summary


__all__ = ["NASRequest", "NASResult", "cached_scores", "check_resume", "nas", "nas_record", "run_nas",
           "settings_note"]
