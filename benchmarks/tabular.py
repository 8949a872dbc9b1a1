"""Tabular mode: a benchmark's own architectures as a search space (`--space tabular:BENCH`).

The genome is one gene, the architecture's index; the key is the architecture id, so
cached proxy values and ground truth are found by id. The space is small, so `lpzero nas`
scores all of it and its "front" is the Pareto set, which can be checked against the
ground truth (`lpzero.nas.pareto`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from lpzero.files import atomic_write_json

from . import canonical_name, open_benchmark
from .base import Benchmark
from .space import NASError, SearchSpace

PREFIX = "tabular:"
ARCHITECTURES_FILE = "architectures.json"


class TabularSpace(SearchSpace):
    """The architectures `ids` (default: all) of the benchmark `path` (a benchmark's name) opens with `options`."""

    selects_architectures = True

    def __init__(self, path: str | None = None, data: str | os.PathLike | None = None,
                 ids: Sequence[str] | None = None, **options: Any) -> None:
        if not path:
            raise NASError(f"space {PREFIX}: name a benchmark ({PREFIX}BENCHMARK)")
        benchmark = canonical_name(path)  # `tabular:lts:lts` and `tabular:lts:/abs/lts/` are one space
        self.benchmark_name, self.data, self.options = benchmark, None if data is None else str(data), dict(options or {})
        self.name = PREFIX + benchmark
        self._bench: Benchmark | None = None
        self._params: dict[str, dict[str, int]] = {}
        self.ids = list(ids) if ids is not None else self.bench.ids()
        if not self.ids:
            raise NASError(f"space {self.name}: no architectures selected")
        for arch_id in self.ids:
            self.bench.check_id(arch_id)
        self._index = {a: i for i, a in enumerate(self.ids)}

    def __getstate__(self) -> dict[str, Any]:
        # a worker reopens the benchmark by name (as the cache's settings do)
        return {**self.__dict__, "_bench": None}

    @property
    def bench(self) -> Benchmark:
        """The benchmark, opened on first use in each process."""
        if self._bench is None:
            self._bench = open_benchmark(self.benchmark_name, self.data, **self.options)
        return self._bench

    def choices(self) -> list[int]:
        return [len(self.ids)]

    def decode(self, genome: Sequence[int]) -> dict:
        self.check_genome(genome)
        return {"id": self.ids[genome[0]]}

    def encode(self, config: dict) -> list[int]:
        arch_id = config.get("id") if isinstance(config, dict) else None
        if arch_id not in self._index:
            raise NASError(f"space {self.name}: {arch_id!r} is not one of its architectures")
        return [self._index[arch_id]]

    def key(self, config: dict) -> str:
        return config["id"]

    def config(self, key: str) -> dict:
        if key not in self._index:
            raise NASError(f"space {self.name}: {key!r} is not one of its architectures")
        return {"id": key}

    def describe(self, config: dict) -> str:
        return config["id"]

    def base_benchmark(self) -> Benchmark:
        return self.bench

    def proxy_benchmark(self) -> Benchmark:
        # the benchmark itself: its ids are the keys, and its cache applies
        return self.bench

    def build_model(self, config: dict, seed: int, device: str | torch.device = "cpu") -> nn.Module:
        return self.bench.build_model(config["id"], seed, device)

    def count_params(self, config: dict) -> dict[str, int]:
        arch_id = config["id"]
        if arch_id not in self._params:
            self._params[arch_id] = self.bench.count_params(arch_id)
        return self._params[arch_id]

    def all_genomes(self) -> list[list[int]]:
        return [[i] for i in range(len(self.ids))]

    def ground_truth(self, config: dict) -> float:
        return self.bench.architecture(config["id"]).ground_truth

    def smallest(self) -> dict:
        return min(({"id": a} for a in self.ids), key=lambda c: self.count_params(c)["total"])

    def write(self, configs: Sequence[dict], out: Path) -> list[Path]:
        """`architectures.json`: each architecture's id, the benchmark's own config and ground truth."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        records = []
        for c in configs:
            arch = self.bench.architecture(c["id"])
            records.append({"id": arch.id, "config": arch.config, "ground_truth": arch.ground_truth,
                            self.bench.raw_metric or "raw": arch.raw})
        path = out / ARCHITECTURES_FILE
        atomic_write_json(path, {"benchmark": self.benchmark_name, "architectures": records})
        return [path]
