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
warning) and named by `load`. A per-file lock keeps two writers (two `lpzero cache`
runs with different baselines) from losing each other's values.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from lpzero.benchmarks import Benchmark, BenchmarkError, get_benchmark
from lpzero.errors import CacheError
from lpzero.files import atomic_write, atomic_write_json
from lpzero.primitives import Weighted
from lpzero.proxies import BASELINES, ProxyContext, six_inputs

from .sampling import arch_seed, sample_inputs, stack_stored

log = logging.getLogger("lpzero")


class DamagedEntry(CacheError):
    """A cache file that cannot be used: unreadable, another architecture's, or stale."""

#: bump when extraction or sampling changes what is stored
EXTRACTION_VERSION = "3"
#: intra-op threads per architecture, whatever `jobs` is: float reductions (matmuls,
#: sums) round differently with another thread count, so a cache built serially and one
#: built in parallel would differ in the last bits, and so would the searches on them
CACHE_THREADS = 1


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
        return get_benchmark(self.benchmark, self.data, **self.options)

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


def compute_architecture(settings: CacheSettings, arch_id: str, baselines: Sequence[str], device: str,
                         path: Path) -> dict:
    """Build, extract, sample, score baselines, write `path`; returns the stored info.

    If `path` already holds this architecture, only the baselines it lacks are computed; a
    damaged or stale file is rebuilt (with a warning).
    """
    bench = settings.open_benchmark()
    config = config_fingerprint(bench, arch_id)
    with _entry_lock(path):
        stored, info = None, None
        if path.is_file():
            try:
                stored, info = read_entry(path, arch_id, settings, config)
            except DamagedEntry as e:
                log.warning("%s; rebuilding it", e)
        batch = bench.make_batch(settings.batch_seed, settings.batch_size, settings.seq_len).to(device)
        # The inputs are extracted from the proxies' shared model, so LPZero's own proxies reuse them.
        ctx = ProxyContext(bench, arch_id, settings.model_seed, batch, device)
        if stored is None:
            t0 = time.perf_counter()
            stored = sample_inputs(six_inputs(ctx), settings.samples, arch_seed(arch_id, settings.model_seed))
            info = {"arch_id": arch_id, "settings": settings.key(), "config": config, "baselines": {},
                    "seconds": {"inputs": time.perf_counter() - t0}}
        todo = [name for name in baselines if name not in info["baselines"]]
        for name in todo:
            value, info["seconds"][name] = ctx.timed(BASELINES[name].fn)
            info["baselines"][name] = float(value)
        if todo or not path.is_file() or info.get("config") != config:
            info["config"] = config
            atomic_write(path, lambda tmp: save_file(stored, str(tmp), metadata={"info": json.dumps(info)}))
    return info


def _exit_with_parent(parent: int) -> None:
    """In a worker: exit as soon as the parent process is gone (killed, not only interrupted)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _init_worker(parent: int) -> None:
    torch.set_num_threads(CACHE_THREADS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it cancels what is queued
    _exit_with_parent(parent)


def _worker(settings: CacheSettings, arch_id: str, baselines: Sequence[str], device: str, path: str) -> dict:
    return compute_architecture(settings, arch_id, baselines, device, Path(path))


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
        path = self.path(arch_id)
        if not path.is_file():
            raise CacheError(f"{path}: not cached (run `lpzero cache {self.settings.benchmark}` first)")
        try:
            return read_entry(path, arch_id, self.settings, config_fingerprint(self.benchmark, arch_id), tensors)
        except DamagedEntry as e:
            raise CacheError(f"{e} (run `lpzero cache {self.settings.benchmark}` to rebuild it)") from None

    def missing(self, arch_ids: Iterable[str], baselines: Sequence[str] = ()) -> list[str]:
        """Ids without a usable file (absent, damaged, stale), or whose file lacks one of `baselines`."""
        out = []
        for a in arch_ids:
            try:
                _, info = self._entry(a, tensors=False)
            except CacheError:
                out.append(a)
                continue
            if any(b not in info["baselines"] for b in baselines):
                out.append(a)
        return out

    def compute(self, arch_ids: Sequence[str], baselines: Sequence[str] = (), jobs: int = 1, device: str = "cpu",
                progress: Callable[[str, dict], None] | None = None) -> list[str]:
        """Fill in the missing architectures; returns the ids computed now.

        With `jobs` > 1, architectures run in worker processes; an interrupt (Ctrl-C) cancels
        what is still queued, keeps what is finished, and stops promptly.
        """
        todo = self.missing(arch_ids, baselines)
        if not todo:
            return []
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "settings.json"
        if not meta.is_file():
            atomic_write_json(meta, {**asdict(self.settings), "version": EXTRACTION_VERSION})
        if jobs <= 1:
            threads = torch.get_num_threads()
            torch.set_num_threads(CACHE_THREADS)
            try:
                for a in todo:
                    info = compute_architecture(self.settings, a, baselines, device, self.path(a))
                    if progress:
                        progress(a, info)
            finally:
                torch.set_num_threads(threads)
            return todo
        pool = ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_init_worker,
                                   initargs=(os.getpid(),))
        try:
            futures = {pool.submit(_worker, self.settings, a, tuple(baselines), device, str(self.path(a))): a
                       for a in todo}
            for fut in as_completed(futures):
                info = fut.result()
                if progress:
                    progress(futures[fut], info)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return todo

    def info(self, arch_id: str) -> dict:
        return self._entry(arch_id, tensors=False)[1]

    def load(self, arch_ids: Sequence[str], device: str = "cpu") -> dict[str, Weighted]:
        """The inputs of `arch_ids` stacked as `Weighted` [N, L, K] (absent layers weigh 0)."""
        per_arch = [self._entry(a, tensors=True)[0] for a in arch_ids]
        return {sym: w.to(device) for sym, w in stack_stored(per_arch, self.settings.samples).items()}

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.dir.glob("*.safetensors")) if self.dir.is_dir() else 0
