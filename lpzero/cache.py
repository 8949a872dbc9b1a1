"""Per-architecture cache of the six proxy inputs and the baseline proxies' values.

One pass per architecture builds the model, extracts A, J, G, H, W, S (one forward,
one backward), computes the requested baseline proxies, and writes one
safetensors file. The search then never builds a model.

Full tensors do not fit (W and G alone of the 200 GPT-2 models are tens of GB), so
each per-layer tensor is stored as `samples` (K) of its elements, with the tensor's
size: every sampled element stands for numel/K elements (see `primitives.values`).
The sample is stratified: the flattened tensor is cut into K equal contiguous chunks
and one element is drawn at random from each, which keeps sums unbiased while
spreading the sample evenly over rows, heads and the causal mask (an i.i.d. sample
left means of zero-mean tensors and of attention maps noisy). W and G of a weight
are sampled at the same positions, so element-wise W∘G is the sample of the full W∘G. A tensor with at most K elements
is stored whole.

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
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from benchmarks import Benchmark, get_benchmark
from benchmarks.inputs import SYMBOLS, ProxyInputs
from primitives import Weighted

from .errors import LPZeroError

#: bump when extraction or sampling changes what is stored
EXTRACTION_VERSION = "2"


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


def stratified_index(n: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """One random position in each of k equal contiguous chunks of range(n) (n > k)."""
    starts = (torch.arange(k, dtype=torch.float64) * n / k).floor().long()
    ends = (torch.arange(1, k + 1, dtype=torch.float64) * n / k).floor().long()
    return starts + (torch.rand(k, generator=gen, dtype=torch.float64) * (ends - starts)).long()


def sample_inputs(inputs: ProxyInputs, samples: int, seed: int) -> dict[str, torch.Tensor]:
    """Reduce full inputs to K elements per tensor; returns the tensors to store.

    Per input X: `X.values` [L, K], `X.count` [L] (elements kept), `X.scale` [L]
    (full elements per kept element), `X.layers` [L] (block index).
    """
    gen = torch.Generator().manual_seed(seed)
    shared_index: dict[str, torch.Tensor] = {}  # W and G of one weight: same positions
    stored: dict[str, torch.Tensor] = {}
    for sym in SYMBOLS:
        rows, counts, scales, layers = [], [], [], []
        for i, lt in enumerate(inputs[sym]):
            flat = lt.tensor.reshape(-1)
            n = flat.numel()
            if n <= samples:
                kept = torch.zeros(samples)
                kept[:n] = flat
                count, scale = n, 1.0
            else:
                key = f"{'W' if sym == 'G' else sym}:{i}"
                if key not in shared_index:
                    shared_index[key] = stratified_index(n, samples, gen)
                kept = flat[shared_index[key]]
                count, scale = samples, n / samples
            rows.append(kept)
            counts.append(count)
            scales.append(scale)
            layers.append(lt.layer)
        stored[f"{sym}.values"] = torch.stack(rows) if rows else torch.zeros(0, samples)
        stored[f"{sym}.count"] = torch.tensor(counts, dtype=torch.int64)
        stored[f"{sym}.scale"] = torch.tensor(scales, dtype=torch.float64)
        stored[f"{sym}.layers"] = torch.tensor(layers, dtype=torch.int64)
    return stored


def arch_seed(arch_id: str, seed: int) -> int:
    """The sampling seed of one architecture's tensors."""
    return zlib.crc32(arch_id.encode()) ^ seed


def compute_architecture(settings: CacheSettings, arch_id: str, baselines: Sequence[str], device: str,
                         path: Path) -> dict:
    """Build, extract, sample, score baselines, write `path`; returns the stored info.

    If `path` already holds this architecture, only the baselines it lacks are computed.
    """
    from .baselines import BASELINES, ProxyContext, six_inputs  # the proxy library sits above the cache

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
    tmp = path.with_name(path.name + ".tmp")
    save_file(stored, str(tmp), metadata={"info": json.dumps(info)})
    tmp.replace(path)
    return info


def _worker(settings: CacheSettings, arch_id: str, baselines: Sequence[str], device: str, path: str,
            threads: int) -> dict:
    torch.set_num_threads(threads)
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
            meta.write_text(json.dumps({**asdict(self.settings), "version": EXTRACTION_VERSION}, indent=1))
        if jobs <= 1:
            for a in todo:
                info = compute_architecture(self.settings, a, baselines, device, self.path(a))
                if progress:
                    progress(a, info)
            return todo
        threads = max(1, torch.get_num_threads() // jobs)
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            futures = {
                pool.submit(_worker, self.settings, a, tuple(baselines), device, str(self.path(a)), threads): a
                for a in todo
            }
            for fut in as_completed(futures):
                info = fut.result()
                if progress:
                    progress(futures[fut], info)
        return todo

    def info(self, arch_id: str) -> dict:
        path = self.path(arch_id)
        if not path.is_file():
            raise LPZeroError(f"{path}: not cached (run `lpzero cache {self.settings.benchmark}` first)")
        with safe_open(str(path), "pt") as f:
            return json.loads(f.metadata()["info"])

    def load(self, arch_ids: Sequence[str], device: str = "cpu") -> dict[str, Weighted]:
        """The inputs of `arch_ids` stacked as `Weighted` [N, L, K] (absent layers weigh 0)."""
        per_arch = []
        for a in arch_ids:
            path = self.path(a)
            if not path.is_file():
                raise LPZeroError(f"{path}: not cached (run `lpzero cache {self.settings.benchmark}` first)")
            with safe_open(str(path), "pt") as f:
                per_arch.append({k: f.get_tensor(k) for k in f.keys()})
        return {sym: w.to(device) for sym, w in stack_stored(per_arch, self.settings.samples).items()}

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.dir.glob("*.safetensors")) if self.dir.is_dir() else 0


def stack_stored(per_arch: Sequence[dict[str, torch.Tensor]], samples: int) -> dict[str, Weighted]:
    """Stored (sampled) inputs of N architectures as `Weighted` [N, L, K]; absent layers are not present."""
    out = {}
    for sym in SYMBOLS:
        n_layers = max(1, max(d[f"{sym}.values"].shape[0] for d in per_arch))
        values = torch.zeros(len(per_arch), n_layers, samples)
        weights = torch.zeros(len(per_arch), n_layers, 1)
        present = torch.zeros(values.shape, dtype=torch.bool)
        for i, d in enumerate(per_arch):
            values[i, : d[f"{sym}.values"].shape[0]] = d[f"{sym}.values"]
            for l, (count, scale) in enumerate(zip(d[f"{sym}.count"].tolist(), d[f"{sym}.scale"].tolist())):
                weights[i, l, 0] = scale
                present[i, l, :count] = True
        out[sym] = Weighted(values, weights, present)
    return out


def full_weighted(inputs: ProxyInputs, device: str = "cpu", symbols: Iterable[str] = SYMBOLS) -> dict[str, Weighted]:
    """Full (unsampled) inputs of one architecture as `Weighted` [1, L, max numel].

    Only `symbols` are built (each pads every layer to the largest, which for W and G
    of a large model is gigabytes); the others are empty and must not be read.
    """
    wanted = set(symbols)
    out = {}
    for sym in SYMBOLS:
        tensors = [lt.tensor.reshape(-1) for lt in inputs[sym]] if sym in wanted else []
        width = max([t.numel() for t in tensors], default=1)
        values = torch.zeros(1, max(1, len(tensors)), width, device=device)
        present = torch.zeros(values.shape, dtype=torch.bool, device=device)
        for l, t in enumerate(tensors):
            values[0, l, : t.numel()] = t
            present[0, l, : t.numel()] = True
        out[sym] = Weighted(values, torch.ones(1, values.shape[1], 1, device=device), present)
    return out
