"""The per-architecture cache of the six proxy inputs and the baseline proxies' values.

One pass per architecture builds the model, extracts A, J, G, H, W, S (one forward,
one backward), computes the requested baseline proxies, and writes one
safetensors file holding the sampled inputs (`lpzero.cache.sampling`). The search
then never builds a model.

Files live in `<root>/<benchmark>/<settings key>/<arch id>.safetensors`; the key
hashes every setting that changes the contents (batch, seeds, samples, benchmark
options, extraction version), so a changed setting never reads stale data. A file
is written to a temporary name and renamed, so an interrupted run leaves only
complete files and the next run resumes with the missing ones.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from lpzero.benchmarks import Benchmark, get_benchmark
from lpzero.errors import CacheError
from lpzero.files import atomic_write, atomic_write_json
from lpzero.primitives import Weighted
from lpzero.proxies import BASELINES, ProxyContext, six_inputs

from .sampling import arch_seed, sample_inputs, stack_stored

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
        return cls(bench.name, batch_size or default[0], seq_len or default[1], options=dict(options or {}),
                   data=None if data is None else str(data), **seeds_and_samples)


def compute_architecture(settings: CacheSettings, arch_id: str, baselines: Sequence[str], device: str,
                         path: Path) -> dict:
    """Build, extract, sample, score baselines, write `path`; returns the stored info.

    If `path` already holds this architecture, only the baselines it lacks are computed.
    """
    bench = settings.open_benchmark()
    batch = bench.make_batch(settings.batch_seed, settings.batch_size, settings.seq_len).to(device)
    # The inputs are extracted from the proxies' shared model, so LPZero's own proxies reuse them.
    ctx = ProxyContext(bench, arch_id, settings.model_seed, batch, device)
    if path.is_file():
        with safe_open(str(path), "pt") as f:
            stored = {k: f.get_tensor(k) for k in f.keys()}
            info = json.loads(f.metadata()["info"])
    else:
        t0 = time.perf_counter()
        stored = sample_inputs(six_inputs(ctx), settings.samples, arch_seed(arch_id, settings.model_seed))
        info = {"arch_id": arch_id, "baselines": {}, "seconds": {"inputs": time.perf_counter() - t0}}
    for name in baselines:
        if name in info["baselines"]:
            continue
        value, info["seconds"][name] = ctx.timed(BASELINES[name].fn)
        info["baselines"][name] = float(value)
    atomic_write(path, lambda tmp: save_file(stored, str(tmp), metadata={"info": json.dumps(info)}))
    return info


def _worker(settings: CacheSettings, arch_id: str, baselines: Sequence[str], device: str, path: str) -> dict:
    torch.set_num_threads(CACHE_THREADS)
    return compute_architecture(settings, arch_id, baselines, device, Path(path))


class InputCache:
    """The cache directory for one `CacheSettings`."""

    def __init__(self, settings: CacheSettings, root: Path | None = None):
        self.settings = settings
        self.dir = (root or default_cache_root()) / settings.benchmark.replace(":", "_").replace("/", "_") / settings.key()

    def path(self, arch_id: str) -> Path:
        return self.dir / f"{arch_id}.safetensors"

    def missing(self, arch_ids: Iterable[str], baselines: Sequence[str] = ()) -> list[str]:
        """Ids without a file, or whose file lacks one of `baselines`."""
        out = []
        for a in arch_ids:
            if not self.path(a).is_file() or any(b not in self.info(a)["baselines"] for b in baselines):
                out.append(a)
        return out

    def compute(self, arch_ids: Sequence[str], baselines: Sequence[str] = (), jobs: int = 1, device: str = "cpu",
                progress: Callable[[str, dict], None] | None = None) -> list[str]:
        """Fill in the missing architectures; returns the ids computed now."""
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
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_worker, self.settings, a, tuple(baselines), device, str(self.path(a))): a
                       for a in todo}
            for fut in as_completed(futures):
                info = fut.result()
                if progress:
                    progress(futures[fut], info)
        return todo

    def info(self, arch_id: str) -> dict:
        path = self.path(arch_id)
        if not path.is_file():
            raise CacheError(f"{path}: not cached (run `lpzero cache {self.settings.benchmark}` first)")
        with safe_open(str(path), "pt") as f:
            return json.loads(f.metadata()["info"])

    def load(self, arch_ids: Sequence[str], device: str = "cpu") -> dict[str, Weighted]:
        """The inputs of `arch_ids` stacked as `Weighted` [N, L, K] (absent layers weigh 0)."""
        per_arch = []
        for a in arch_ids:
            path = self.path(a)
            if not path.is_file():
                raise CacheError(f"{path}: not cached (run `lpzero cache {self.settings.benchmark}` first)")
            with safe_open(str(path), "pt") as f:
                per_arch.append({k: f.get_tensor(k) for k in f.keys()})
        return {sym: w.to(device) for sym, w in stack_stored(per_arch, self.settings.samples).items()}

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.dir.glob("*.safetensors")) if self.dir.is_dir() else 0
