"""The per-architecture cache of the six proxy inputs and the baseline proxies' values.

One pass per architecture builds the model, extracts A, J, G, H, W, S (one forward,
one backward), computes the requested baseline proxies, and writes one
safetensors file holding the sampled inputs (`lpzero.cache.sampling`). The search
then never builds a model.

Files live in `<root>/<benchmark>/<settings key>/<arch id>.safetensors`; the key
hashes every setting that changes the contents (batch, seeds, samples, benchmark
options, extraction version), so a changed setting never reads stale data. A file
is written to a temporary name and renamed, so an interrupted run leaves only
complete files and the next run resumes with the missing ones. Every file records
its architecture, settings key and a hash of the architecture's config, and is
checked when read: a damaged or stale file is rebuilt by the next `compute` (with a
warning) and named by `load`. Workers (any `lpzero.executors` executor) only compute;
this process writes each result, under a per-file lock that keeps two writers (two
`lpzero cache` runs with different baselines) from losing each other's values.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from lpzero.benchmarks import Benchmark, BenchmarkError, open_benchmark
from lpzero.errors import CacheError
from lpzero.executors import TASK_THREADS, Executor, TaskFailure, make_executor, torch_threads
from lpzero.files import atomic_write, atomic_write_json
from lpzero.primitives import Weighted
from lpzero.proxies import HAND_DESIGNED, ProxyContext, score_proxies

from .sampling import arch_seed, sample_context, stack_stored

log = logging.getLogger("lpzero")


class DamagedEntry(CacheError):
    """A cache file that cannot be used: unreadable, another architecture's, or stale."""

#: bump when extraction or sampling changes what is stored
EXTRACTION_VERSION = "3"
#: intra-op threads per architecture, whatever `jobs` is (`lpzero.executors.TASK_THREADS`): a cache
#: built serially and one built in parallel are bitwise the same, and so are the searches on them
CACHE_THREADS = TASK_THREADS


def default_cache_root() -> Path:
    return Path(os.environ.get("LPZERO_CACHE", ".lpzero_cache"))


@dataclass(frozen=True)
class CacheSettings:
    """Everything that determines what a cache file holds."""

    benchmark: str
    batch_size: int
    seq_len: int
    batch_seed: int = 0
    model_seed: int = 0
    samples: int = 1024
    options: dict = field(default_factory=dict)
    data: str | None = None

    def key(self) -> str:
        d = asdict(self)
        d.pop("data")  # the same benchmark read from another path is the same data
        d["version"] = EXTRACTION_VERSION
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    def open_benchmark(self) -> Benchmark:
        """The benchmark these settings are for, opened once per process (workers open it again)."""
        return open_benchmark(self.benchmark, self.data, **self.options)

    @classmethod
    def for_benchmark(cls, bench: Benchmark, batch_size: int | None = None, seq_len: int | None = None,
                      paper_batch: bool = False, options: dict | None = None, data: str | None = None,
                      **seeds_and_samples) -> "CacheSettings":
        """Settings for `bench`: its CPU mini-batch (or the paper's), overridden by what is given."""
        default = (bench.paper_batch_size, bench.paper_seq_len) if paper_batch else (bench.default_batch_size,
                                                                                   bench.default_seq_len)
        seq_len = seq_len or default[1]
        longest = bench.max_seq_len()
        if longest is not None and seq_len > longest:
            raise BenchmarkError(f"{bench.name}: sequence length {seq_len} exceeds the {longest} positions its models "
                                 "have (--seq-len)")
        bench.check_batch(batch_size or default[0], seq_len)  # e.g. a text shorter than one window
        return cls(bench.name, batch_size or default[0], seq_len, options=dict(options or {}),
                   data=None if data is None else str(data), **seeds_and_samples)


def config_fingerprint(bench: Benchmark, arch_id: str) -> str:
    """A hash of an architecture's config content: a file built from another config is stale."""
    config = json.dumps(bench.architecture(arch_id).config, sort_keys=True, default=str)
    return hashlib.sha1(config.encode()).hexdigest()[:16]


def read_entry(path: Path, arch_id: str, settings: CacheSettings, config: str | None,
               tensors: bool = True) -> tuple[dict[str, torch.Tensor], dict]:
    """(stored tensors, info) of one cache file, verified: DamagedEntry says what is wrong with it.

    Verified: the file reads as safetensors with lpzero's metadata, it holds `arch_id`, it was
    built with `settings` and (when the file records one) from the config hashed `config`.
    Files of lpzero versions that recorded no config hash are taken as built from the current one.
    """
    try:
        with safe_open(str(path), "pt") as f:
            info = json.loads((f.metadata() or {})["info"])
            stored = {k: f.get_tensor(k) for k in f.keys()} if tensors else {}
    except FileNotFoundError:
        raise
    except Exception as e:  # safetensors raises its own error types for a torn or foreign file
        raise DamagedEntry(f"{path}: unreadable ({type(e).__name__}: {e})") from None
    if info.get("arch_id") != arch_id:
        raise DamagedEntry(f"{path}: holds architecture {info.get('arch_id')!r}, not {arch_id!r}")
    if info.get("settings", settings.key()) != settings.key():
        raise DamagedEntry(f"{path}: built with other cache settings ({info['settings']})")
    if config is not None and info.get("config", config) != config:
        raise DamagedEntry(f"{path}: built from another config of {arch_id} (the benchmark's files changed)")
    if tensors and "W.values" not in stored:
        raise DamagedEntry(f"{path}: no stored inputs")
    return stored, info


@contextlib.contextmanager
def _entry_lock(path: Path) -> Iterator[None]:
    """One writer per cache entry at a time, across processes (two `lpzero cache` runs included)."""
    with open(path.with_name(f".{path.name}.lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class EntryTask:
    """What one architecture still needs: its inputs (unless stored) and the baselines it lacks."""

    arch_id: str
    need_inputs: bool
    baselines: tuple[str, ...]


def compute_entry(task: EntryTask, settings: CacheSettings, device: str) -> tuple[dict | None, dict]:
    """Run in a worker: build the model once, extract and sample the inputs if needed, score the baselines.

    A baseline is any name `HAND_DESIGNED` answers (registered, entry point, `module:ATTR`),
    stored under that name. A baseline that raises fails the architecture; a non-finite
    value is stored as it is. Returns (stored tensors or None, {"baselines": ..., "seconds": ...});
    the driver writes them.
    """
    proxies = [HAND_DESIGNED.get(name) for name in task.baselines]
    with torch_threads(CACHE_THREADS):
        bench = settings.open_benchmark()
        batch = bench.make_batch(settings.batch_seed, settings.batch_size, settings.seq_len).to(device)
        # The inputs are extracted from the proxies' shared model, so LPZero's own proxies reuse them.
        ctx = ProxyContext(bench, task.arch_id, settings.model_seed, batch, device)
        stored, seconds, values = None, {}, {}
        if task.need_inputs:
            t0 = time.perf_counter()
            # streamed, unless a baseline reads the six inputs whole: then one full pass serves both
            stored = sample_context(ctx, settings.samples, arch_seed(task.arch_id, settings.model_seed),
                                    full=any(p.inputs_needed for p in proxies))
            seconds["inputs"] = time.perf_counter() - t0
        results = score_proxies(proxies, ctx, strict=True)
        for name, proxy in zip(task.baselines, proxies):
            values[name], seconds[name] = results[proxy.name].value, results[proxy.name].seconds
    return stored, {"baselines": values, "seconds": seconds}


class InputCache:
    """The cache directory for one `CacheSettings`."""

    def __init__(self, settings: CacheSettings, root: Path | None = None):
        self.settings = settings
        self.dir = (root or default_cache_root()) / settings.benchmark.replace(":", "_").replace("/", "_") / settings.key()
        self._bench: Benchmark | None = None

    @property
    def benchmark(self) -> Benchmark:
        if self._bench is None:
            self._bench = self.settings.open_benchmark()
        return self._bench

    def path(self, arch_id: str) -> Path:
        return self.dir / f"{arch_id}.safetensors"

    def _entry(self, arch_id: str, tensors: bool) -> tuple[dict[str, torch.Tensor], dict]:
        """The verified entry; CacheError if it is absent, DamagedEntry if damaged or stale."""
        path = self.path(arch_id)
        if not path.is_file():
            raise CacheError(f"{path}: not cached (run `lpzero cache {self.settings.benchmark}` first)")
        return read_entry(path, arch_id, self.settings, config_fingerprint(self.benchmark, arch_id), tensors)

    def _read(self, arch_id: str, tensors: bool) -> tuple[dict[str, torch.Tensor], dict]:
        """`_entry` for readers: a damaged or stale entry is a CacheError that says how to repair it."""
        try:
            return self._entry(arch_id, tensors)
        except DamagedEntry as e:
            raise CacheError(f"{e} (run `lpzero cache {self.settings.benchmark}` to rebuild it)") from None

    def _usable_info(self, arch_id: str, warn: bool = False) -> dict | None:
        """The verified info of an entry, or None if it is absent, damaged or stale."""
        try:
            return self._entry(arch_id, tensors=False)[1]
        except DamagedEntry as e:
            if warn:
                log.warning("%s; rebuilding it", e)
            return None
        except CacheError:
            return None

    def _tasks(self, arch_ids: Iterable[str], baselines: Sequence[str], warn: bool = False) -> list[EntryTask]:
        tasks = []
        for a in arch_ids:
            info = self._usable_info(a, warn)
            lacking = tuple(b for b in baselines if info is None or b not in info["baselines"])
            if info is None or lacking:
                tasks.append(EntryTask(a, info is None, lacking))
        return tasks

    def missing(self, arch_ids: Iterable[str], baselines: Sequence[str] = ()) -> list[str]:
        """Ids without a usable file (absent, damaged, stale), or whose file lacks one of `baselines`."""
        return [t.arch_id for t in self._tasks(arch_ids, baselines)]

    def _store(self, task: EntryTask, stored: dict | None, computed: dict) -> dict:
        """Merge what a worker computed into the entry on disk (the driver writes, under the entry's lock)."""
        path = self.path(task.arch_id)
        config = config_fingerprint(self.benchmark, task.arch_id)
        with _entry_lock(path):
            info = None
            if stored is None:  # baselines for an entry whose inputs are on disk
                try:
                    stored, info = read_entry(path, task.arch_id, self.settings, config)
                except (DamagedEntry, FileNotFoundError) as e:
                    raise CacheError(f"{path}: changed while its baselines were computed ({e}); run again") from None
            elif path.is_file():  # keep baselines another writer stored meanwhile
                try:
                    info = read_entry(path, task.arch_id, self.settings, config, tensors=False)[1]
                except DamagedEntry:
                    info = None
            info = info or {"arch_id": task.arch_id, "settings": self.settings.key(), "baselines": {},
                            "seconds": {}}
            info["config"] = config
            info["baselines"].update(computed["baselines"])
            info["seconds"].update(computed["seconds"])
            atomic_write(path, lambda tmp: save_file(stored, str(tmp), metadata={"info": json.dumps(info)}))
        return info

    def compute(self, arch_ids: Sequence[str], baselines: Sequence[str] = (), jobs: int = 1, device: str = "cpu",
                progress: Callable[[str, dict], None] | None = None, executor: Executor | None = None,
                on_start: Callable[[int], None] | None = None) -> list[str]:
        """Fill in the missing architectures; returns the ids computed now.

        `on_start(n)` is told how many architectures need work before any starts (a progress
        bar's total); `progress(arch_id, info)` after each is stored.
        The work runs on `executor` (default: this process for one job, else a pool of `jobs`
        processes); this process writes every result, so any executor builds the same files.
        An interrupt (Ctrl-C) keeps what is finished. A task that fails is named with its
        architecture after the others are stored (CacheError).
        """
        tasks = self._tasks(arch_ids, baselines, warn=True)
        if not tasks:
            return []
        if on_start:
            on_start(len(tasks))
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "settings.json"
        if not meta.is_file():
            atomic_write_json(meta, {**asdict(self.settings), "version": EXTRACTION_VERSION})
        own = executor is None
        executor = executor or make_executor(None, jobs)
        failures: list[TaskFailure] = []
        try:
            for task, result in executor.imap_unordered(compute_entry, tasks, self.settings, device):
                if isinstance(result, TaskFailure):
                    failures.append(result)
                    continue
                info = self._store(task, *result)
                if progress:
                    progress(task.arch_id, info)
        finally:
            if own:
                executor.close()
        if failures:
            named = "; ".join(f"{f.item.arch_id}: {f.error}" for f in failures[:5])
            raise CacheError(f"{len(failures)} of {len(tasks)} architecture(s) failed, the others are cached: {named}")
        return [t.arch_id for t in tasks]

    def info(self, arch_id: str) -> dict:
        return self._read(arch_id, tensors=False)[1]

    def load(self, arch_ids: Sequence[str], device: str = "cpu") -> dict[str, Weighted]:
        """The inputs of `arch_ids` stacked as `Weighted` [N, L, K] (absent layers weigh 0)."""
        per_arch = [self._read(a, tensors=True)[0] for a in arch_ids]
        return {sym: w.to(device) for sym, w in stack_stored(per_arch, self.settings.samples).items()}

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.dir.glob("*.safetensors")) if self.dir.is_dir() else 0
