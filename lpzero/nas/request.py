"""What `lpzero nas` is asked, checked before any work, and turned into one `run_nas` call.

`NASRequest` is the command's one settings object. `pick(request)` opens the space and
the proxy, checks the options against each other (tabular-only options on an open
space, an adapter on a non-LoNAS space, limits and costs), decides where scores come
from, and runs the search (`lpzero.nas.workflow.run_nas`):

- an open space (LTS, LoNAS, `module:Class`): every candidate is built and scored exactly;
- a tabular space with a found proxy: exactly from the models, or from the cache's samples
  with `cached_scores` (what the search's fitness read);
- a tabular space with a hand-designed proxy: from the cache (a parameter count, directly).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from lpzero.benchmarks import Benchmark, folder_name
from lpzero.benchmarks.selection import BenchmarkRequest
from lpzero.cache.request import CacheRequest, Progress, fill_cache, no_progress
from lpzero.errors import LPZeroError
from lpzero.executors import ExecutorSettings
from lpzero.files import owned_folder
from lpzero.proxies import FoundProxy, Proxy
from lpzero.report.rank import rank_pass_free

from .evaluate import COSTS, EvalSettings, proxy_spec
from .nsga import NSGASettings
from .space import SearchSpace
from .spaces import get_space
from .tabular import PREFIX as TABULAR_PREFIX
from .workflow import cached_scores, check_resume, run_nas

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


def _open_space(request: NASRequest):
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


def pick(request: NASRequest, progress: Progress = no_progress) -> Path:
    """Run the architecture search `request` describes; returns the output folder."""
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
    with owned_folder(out):  # before any work: an unwritable or busy --out fails now
        if request.resume:  # a checkpoint of another space, selection or fewer generations: refused before any work
            check_resume(space, proxy, settings, request.nsga, out)
        given, note = _given_scores(request, proxy, space, base, options, progress)
        total = len(space.all_genomes() or []) or request.nsga.population * (request.nsga.generations + 1)
        stage = f"nas {space.name}"
        with request.executor.make() as executor:
            run_nas(space, proxy, settings, request.nsga, out, executor, resume=request.resume, given=given,
                    scores_note=note or settings_note(settings), progress=lambda n: progress(stage, n, total))
    return out


def settings_note(settings: EvalSettings) -> str:
    """How exact scores were computed (the report's line)."""
    return f"exact ({settings.batch_size} x {settings.seq_len} batch, model seed {settings.model_seed})"


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


__all__ = ["COSTS", "NASRequest", "pick"]
