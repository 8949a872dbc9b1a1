"""Per-architecture cache of the six proxy inputs and the baseline proxies' values.

One pass per architecture builds the model, extracts A, J, G, H, W, S (one forward,
one backward), computes the requested baseline proxies, and writes one
safetensors file. The search then never builds a model.

Full tensors do not fit (W and G alone of the 200 GPT-2 models are tens of GB), so
each per-layer tensor is stored as `samples` (K) of its elements, each with a weight:
how many elements of the full tensor it stands for (see `primitives.values`), so
sums stay unbiased. Two stratified schemes:

- W and G are joined element-wise (W∘G), so they are sampled at the same positions:
  the flattened tensor is cut into K equal contiguous chunks and one element is
  drawn from each, spreading the sample evenly over rows and columns.
- A, J, H and S are only ever combined with themselves, so they are stratified by
  value: the K/8 smallest and K/8 largest elements are kept exactly (weight 1) and
  one element is drawn from each of equal chunks of the sorted rest. Extremes (max,
  min, min-max scaling, the softmax shift) are then exact, and heavy tails (the
  few large entries of a causal attention map's first rows, which dominate its
  variance and norm) are no longer left to chance.

The weights are then calibrated (`calibrated_weights`) so that each stored tensor
reproduces the full tensor's count, sum and sum of squares exactly. A tensor with
at most K elements is stored whole.

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


def stratified_index(n: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """One random position in each of k equal contiguous chunks of range(n) (n > k)."""
    starts = (torch.arange(k, dtype=torch.float64) * n / k).floor().long()
    ends = (torch.arange(1, k + 1, dtype=torch.float64) * n / k).floor().long()
    return starts + (torch.rand(k, generator=gen, dtype=torch.float64) * (ends - starts)).long()


#: share of the K slots given to the smallest and (as many) largest values, kept exactly
EXACT_TAIL_SHARE = 1 / 8


def _standardized(v: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    m, s = float(v.mean()), float(v.std()) if v.numel() > 1 else 0.0
    return (v - m) / (s or 1.0), m, s or 1.0


def calibrated_weights(kept: list[torch.Tensor], full: list[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    """Sampling weights adjusted so the sample reproduces the full tensors' first two moments exactly.

    Linear (GREG) calibration: w' = w (1 + x λ), the weights closest to `weights` for
    which sum(w' x) equals the full tensors' totals, with x = (1, v, v²) of each
    tensor in `kept` (sampled values; `full`: the same tensors whole, in the same
    order) and, for two aligned tensors, their product. Sums, means, variances and
    norms of the stored inputs are then exact, and statistics of tensors whose mean
    is far below their spread (weights, gradients) are no longer sampling noise.
    Weights stay non-negative; if the full tensors are not finite, `weights` is returned.
    """
    w = weights.double()
    columns, totals = [torch.ones_like(w)], [float(len(full[0]))]
    scaled = []
    for k, f in zip(kept, full):
        f = f.double()
        z, m, s = _standardized(k.double())
        zf = (f - m) / s
        scaled.append((z, zf))
        columns += [z, z * z]
        totals += [float(zf.sum()), float((zf * zf).sum())]
    if len(scaled) == 2:
        columns.append(scaled[0][0] * scaled[1][0])
        totals.append(float((scaled[0][1] * scaled[1][1]).sum()))
    x, target = torch.stack(columns, 1), torch.tensor(totals, dtype=torch.float64)
    if not torch.isfinite(target).all() or not torch.isfinite(x).all():
        return weights
    gram = (x * w[:, None]).T @ x
    lam = torch.linalg.pinv(gram, hermitian=True) @ (target - w @ x)
    return (w * (1 + x @ lam)).clamp_min(0).to(weights.dtype)


def _sorted_sample(flat: torch.Tensor, k: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Stratified by value: the extremes exactly, one value from each of equal chunks of the sorted rest."""
    n, tail = flat.numel(), int(k * EXACT_TAIL_SHARE)
    ordered = flat.sort().values  # NaN sorts last, so it is kept and the proxy is found invalid
    middle = ordered[tail:n - tail]
    picked = middle[stratified_index(middle.numel(), k - 2 * tail, gen)]
    weight = calibrated_weights([picked], [middle], torch.full((k - 2 * tail,), middle.numel() / (k - 2 * tail)))
    ones = torch.ones(tail)
    return torch.cat([ordered[:tail], picked, ordered[n - tail:]]), torch.cat([ones, weight, ones])


def _aligned_symbols() -> set[str]:
    """Inputs that share a tensor type with another input (W and G): they are joined element-wise."""
    from primitives.types import INPUTS

    return {a.symbol for a in INPUTS for b in INPUTS if a is not b and a.type is b.type}


def sample_inputs(inputs: ProxyInputs, samples: int, seed: int) -> dict[str, torch.Tensor]:
    """Reduce full inputs to K elements per tensor; returns the tensors to store.

    Per input X: `X.values` [L, K], `X.weights` [L, K] (full elements per kept
    element), `X.count` [L] (elements kept), `X.layers` [L] (block index).
    Aligned inputs (W, G) are sampled at the same positions with the same
    weights, calibrated on both tensors together.
    """
    gen = torch.Generator().manual_seed(seed)
    aligned = sorted(_aligned_symbols())
    kept: dict[str, list[torch.Tensor]] = {sym: [] for sym in SYMBOLS}
    weights: dict[str, list[torch.Tensor]] = {sym: [] for sym in SYMBOLS}
    for sym in SYMBOLS:
        if sym in aligned and sym != aligned[0]:
            continue  # sampled together with the first aligned input, below
        group = [s for s in aligned] if sym in aligned else [sym]
        for i in range(len(inputs[sym])):
            flats = [inputs[s][i].tensor.reshape(-1).float() for s in group]
            n = flats[0].numel()
            if n <= samples:
                for s, flat in zip(group, flats):
                    kept[s].append(torch.cat([flat, flat.new_zeros(samples - n)]))
                    weights[s].append(torch.ones(samples))
            elif len(group) > 1:
                index = stratified_index(n, samples, gen)
                weight = calibrated_weights([f[index] for f in flats], flats, torch.full((samples,), n / samples))
                for s, flat in zip(group, flats):
                    kept[s].append(flat[index])
                    weights[s].append(weight)
            else:
                values, weight = _sorted_sample(flats[0], samples, gen)
                kept[sym].append(values)
                weights[sym].append(weight)
    stored: dict[str, torch.Tensor] = {}
    for sym in SYMBOLS:
        empty = torch.zeros(0, samples)
        stored[f"{sym}.values"] = torch.stack(kept[sym]) if kept[sym] else empty
        stored[f"{sym}.weights"] = torch.stack(weights[sym]) if weights[sym] else empty
        stored[f"{sym}.count"] = torch.tensor([min(lt.tensor.numel(), samples) for lt in inputs[sym]], dtype=torch.int64)
        stored[f"{sym}.layers"] = torch.tensor([lt.layer for lt in inputs[sym]], dtype=torch.int64)
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
            meta.write_text(json.dumps({**asdict(self.settings), "version": EXTRACTION_VERSION}, indent=1))
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
        weights = torch.zeros(values.shape)
        present = torch.zeros(values.shape, dtype=torch.bool)
        for i, d in enumerate(per_arch):
            n = d[f"{sym}.values"].shape[0]
            values[i, :n] = d[f"{sym}.values"]
            weights[i, :n] = d[f"{sym}.weights"]
            for l, count in enumerate(d[f"{sym}.count"].tolist()):
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
