"""LoNAS sub-networks of a LLaMA super-network, as an open search space (`--space lonas`).

`lonas` is the `lonas-mini` benchmark's super-network; `lonas:DIR` a built LoNAS
directory or a local LLaMA checkpoint (its adapter: `DIR/adapter` if there, or the
`adapter` option). The genome is one gene per group of the benchmark's `LoNASSpace`
(the index of the group's choice), so every genome is a distinct sub-network. Candidates
are scored on their inherited super-network weights. Chosen sub-networks are written as
peft adapter directories that standard peft loads, each with `lonas_subnetwork.json`
(its choices and FFN widths; see `lpzero.benchmarks.lonas.export_subnetwork`).

Everything about the sub-networks is the benchmark's (`LoNASBenchmark.search_space()`);
this adapter gives it the `SearchSpace` interface and NAS's errors.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .. import canonical_name, open_benchmark
from ..base import Benchmark, BenchmarkError
from ..space import NASError, SearchSpace
from .benchmark import LoNASBenchmark, SubnetworkGenomes


class LoNASSearchSpace(SearchSpace):
    """The sub-networks of one LoNAS super-network."""

    def __init__(self, data: str | os.PathLike | None = None, path: str | os.PathLike | None = None,
                 adapter: str | os.PathLike | None = None, dtype: str | None = None,
                 text: str | os.PathLike | None = None, space: str | None = None) -> None:
        self.data = None if data is None else str(data)
        # the path resolved: one directory is one space however it is spelled (checkpoints, output folders)
        self.benchmark_name = "lonas-mini" if path is None else canonical_name(f"lonas:{path}")
        self.name = "lonas" if path is None else self.benchmark_name
        self.options = {} if adapter is None else {"adapter": str(Path(adapter).resolve())}
        # the benchmark options the candidates are scored under (workers reopen the benchmark with them)
        self.options.update({k: v for k, v in (("dtype", dtype), ("text", text), ("space", space)) if v is not None})
        self._bench: LoNASBenchmark | None = None
        self._genomes: SubnetworkGenomes | None = None
        self.bench  # opened now, so a bad path or space fails before any work

    def __getstate__(self) -> dict[str, Any]:
        # a worker reopens the benchmark (and loads the super-network) once per process
        return {**self.__dict__, "_bench": None, "_genomes": None}

    @property
    def bench(self) -> LoNASBenchmark:
        """The LoNAS benchmark, opened once per process."""
        if self._bench is None:
            bench = open_benchmark(self.benchmark_name, self.data, **self.options)
            if not isinstance(bench, LoNASBenchmark):
                raise NASError(f"space {self.name}: {self.benchmark_name!r} is not a LoNAS benchmark")
            self._bench = bench
        return self._bench

    @property
    def genomes(self) -> SubnetworkGenomes:
        """The benchmark's sub-networks as genomes (everything this space delegates to)."""
        if self._genomes is None:
            self._genomes = self.bench.search_space()
        return self._genomes

    def choices(self) -> list[int]:
        return self.genomes.choices()

    def decode(self, genome: Sequence[int]) -> dict:
        self.check_genome(genome)
        return self.genomes.decode(genome)

    def encode(self, config: dict) -> list[int]:
        try:
            return self.genomes.encode(config)
        except BenchmarkError as e:
            raise NASError(str(e)) from None

    def describe(self, config: dict) -> str:
        return self.genomes.describe(config)

    def base_benchmark(self) -> Benchmark:
        return self.bench

    def build_model(self, config: dict, seed: int, device: str | torch.device = "cpu") -> nn.Module:
        """The sub-network on inherited weights (`seed` is not used)."""
        return self.genomes.build(config, device)

    def count_params(self, config: dict) -> dict[str, int]:
        return self.genomes.count_params(config)

    def smallest(self) -> dict:
        return self.genomes.smallest()

    def ground_truth(self, config: dict) -> float | None:
        """Minus the held-out perplexity, when the benchmark's ground truth has this sub-network."""
        return self.genomes.ground_truth(config)

    def write(self, configs: Sequence[dict], out: Path) -> list[Path]:
        """`subnetwork_<k>/`: a peft adapter (rank_pattern) and `lonas_subnetwork.json` per sub-network."""
        return self.genomes.export(configs, out)
