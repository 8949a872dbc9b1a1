"""A command's cache: which mini-batch, seeds, samples and device, and filling it with progress.

`CacheRequest` holds the cache options every command shares (`--batch-size`,
`--seq-len`, `--paper-batch`, `--batch-seed`, `--model-seed`, `--samples`,
`--device`, `--cache-dir`); its defaults are the ones the CLI shows. `fill_cache`
computes what a cache lacks (`lpzero cache`, and the first step of `rank` and `evolve`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from lpzero.benchmarks import Benchmark
from lpzero.errors import LPZeroError, UnknownNameError
from lpzero.executors import ExecutorSettings
from lpzero.proxies import HAND_DESIGNED

from .store import CacheSettings, InputCache

#: progress(stage, done, total[, postfix]): what long work reports, one stage at a time
Progress = Callable[..., None]


def no_progress(stage: str, done: int, total: int, postfix: str | None = None) -> None:
    """A `Progress` that shows nothing."""


@dataclass(frozen=True)
class CacheRequest:
    """The cache options of a command (None: the benchmark's CPU default)."""

    batch_size: int | None = None
    seq_len: int | None = None
    #: the paper's mini-batch shape instead of the CPU default
    paper_batch: bool = False
    batch_seed: int = CacheSettings.batch_seed
    model_seed: int = CacheSettings.model_seed
    #: elements kept per cached tensor
    samples: int = CacheSettings.samples
    device: str = "cpu"
    cache_dir: str | None = None
    #: shorten `seq_len` to the benchmark's positions instead of refusing it (`--quick`'s batch)
    within_positions: bool = False

    def settings(self, bench: Benchmark, options: dict | None = None, data: str | None = None) -> CacheSettings:
        """The cache settings for `bench`, opened with `options` from `data` (a sequence longer than its
        positions is an error now)."""
        check_device(self.device)
        seq_len = self.seq_len
        if self.within_positions and seq_len is not None and bench.max_seq_len() is not None:
            seq_len = min(seq_len, bench.max_seq_len())
        return CacheSettings.for_benchmark(bench, self.batch_size, seq_len, self.paper_batch,
                                           options=options, data=data, batch_seed=self.batch_seed,
                                           model_seed=self.model_seed, samples=self.samples)

    def open(self, bench: Benchmark, options: dict | None = None, data: str | None = None) -> InputCache:
        """The cache of `bench` (opened with `options` from `data`) under these settings; nothing is computed yet."""
        return InputCache(self.settings(bench, options, data), Path(self.cache_dir) if self.cache_dir else None)


def check_device(device: str) -> None:
    """An LPZeroError unless `device` is cpu, or cuda on a machine that has it."""
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise LPZeroError(f"--device {device!r} is not a device (cpu, cuda or cuda:N)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise LPZeroError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
    if kind not in ("cpu", "cuda"):
        raise LPZeroError(f"--device {device!r}: lpzero runs on cpu or cuda")


def proxy_names(spec: str) -> list[str]:
    """Hand-designed proxies named by `all`, `none` or a comma-separated list, checked."""
    if spec == "all":
        return list(HAND_DESIGNED)
    if spec == "none":
        return []
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise LPZeroError(f"no proxy named in {spec!r} (all, none, or a comma-separated list)")
    unknown = [n for n in names if n not in HAND_DESIGNED and ":" not in n]
    if unknown:
        raise UnknownNameError("proxy", ", ".join(unknown), HAND_DESIGNED.names())
    for name in names:
        HAND_DESIGNED.get(name)  # a user's `module:ATTR` proxy is imported (and checked) now
    return list(dict.fromkeys(names))


def fill_cache(cache: InputCache, ids: Sequence[str], baselines: Sequence[str], executor: ExecutorSettings,
               device: str = "cpu", progress: Progress = no_progress) -> None:
    """Compute what the cache lacks of `ids` (inputs and `baselines`) on `device`, with `executor`."""
    stage = f"caching {cache.settings.benchmark}"
    counts = {"done": 0, "total": 0}

    def start(total: int) -> None:
        counts["total"] = total
        progress(stage, 0, total)

    def one(arch_id: str, info: dict) -> None:
        counts["done"] += 1
        progress(stage, counts["done"], counts["total"])

    with executor.make() as ex:
        cache.compute(list(ids), list(baselines), device=device, executor=ex, on_start=start, progress=one)
