"""`hf:FILE`: a user's table of transformers architectures with measured quality, as a benchmark, no code.

The file (`table.read_table`) names a transformers `model_type` (or a base config.json), a local
tokenizer, the metric's orientation and the architectures: each one's config keys and metric.
Models are `AutoModelForCausalLM` (or `AutoModelForMaskedLM` for an encoder family) built with
`from_config` in `dtype`, random weights drawn from the seed; mini-batches, objective and the six
inputs' sites are `models.HFModels`'. Everything is checked when the file is opened, before any
work: the file, every config (transformers builds each on the meta device), the tokenizer against
the vocabulary, the text. `neox-mini` is the table `lpzero build neox-mini` writes (`BuiltTable`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..base import Architecture, BenchmarkError, default_data_root
from ..sites import build_model, config_of, count_model_params, site_map, transformers_error
from .models import HFModels, dtype_of
from .table import Table, check_config_keys, read_table

#: the table a built benchmark's folder holds (written last: its presence means the build is complete)
TABLE_FILE = "benchmark.yaml"
#: where `lpzero build neox-mini` writes by default, and where "neox-mini" looks after the data root
NEOX_MINI_DIR = "neox_mini"


class HFBenchmark(HFModels):
    """The architectures of an `hf:FILE` table (see the module docstring)."""

    def __init__(self, path: str | os.PathLike, data_root: str | os.PathLike | None = None, name: str = "hf",
                 dtype: str | None = None, text: str | os.PathLike | None = None) -> None:
        self.table: Table = read_table(Path(path))
        self.dtype = dtype_of(dtype)
        sites = site_map(self.table.model_type)  # a family without a SiteMap: one line naming the known ones
        check_config_keys(self.table)
        ids = [a.id for a in self.table.architectures]
        twice = [i for i in ids if ids.count(i) > 1]
        if twice:
            raise BenchmarkError(f"{self.table.path}: architecture id {twice[0]!r} is given twice")
        self._archs = {a.id: a for a in self.table.architectures}
        self._configs = {a: self._config(a) for a in ids}
        self._params = {a: self._counted(a, sites) for a in ids}  # every config built once, on the meta device
        positions = [_positions(c) for c in self._configs.values()]
        super().__init__(name, sites, self.table.tokenizer, data_root, text if text is not None else self.table.text,
                         min(int(c.vocab_size) for c in self._configs.values()),
                         min(positions) if None not in positions else None)
        self.raw_metric = self.table.metric

    @classmethod
    def open(cls, name: str, argument: str | None = None, data: str | os.PathLike | None = None,
             **options: Any) -> "HFBenchmark":
        """`hf:FILE`: the table in FILE (WikiText-2 from the data root unless it names its own text)."""
        if not argument:
            raise BenchmarkError("hf:FILE names a table of architectures (a YAML file): hf:path/to/table.yaml")
        return cls(argument, Path(data) if data is not None else default_data_root(), name, **options)

    def _config(self, arch_id: str):
        try:
            return config_of(self.table.model_type, self.table.full_config(self._archs[arch_id]))
        except Exception as e:  # transformers' config classes raise their own types for a bad value
            raise BenchmarkError(f"{self.table.path}: architecture {arch_id}: transformers rejects its config: "
                                 f"{transformers_error(e)}") from None

    def _counted(self, arch_id: str, sites) -> dict[str, int]:
        try:
            return count_model_params(self._configs[arch_id], sites)
        except Exception as e:  # e.g. a width no head count divides: the model's own check
            raise BenchmarkError(f"{self.table.path}: architecture {arch_id}: transformers cannot build it: "
                                 f"{transformers_error(e)}") from None

    def ids(self) -> list[str]:
        return list(self._archs)

    def architecture(self, arch_id: str) -> Architecture:
        """Its config keys, ground truth (the metric, negated where lower is better) and metric."""
        self.check_id(arch_id)
        arch = self._archs[arch_id]
        truth = arch.metric if self.table.higher_is_better else -arch.metric
        return Architecture(arch_id, self.table.full_config(arch), truth, arch.metric)

    def build_model(self, arch_id: str, seed: int, device: str | torch.device = "cpu") -> nn.Module:
        """The architecture with random weights drawn from `seed`, in the benchmark's dtype, in eval mode."""
        self.check_id(arch_id)
        return build_model(self._configs[arch_id], self.sites, seed, self.dtype).to(device)

    def count_params(self, arch_id: str) -> dict[str, int]:
        """total / embedding (the input embedding) / nonembedding parameters, counted on the meta device."""
        self.check_id(arch_id)
        return dict(self._params[arch_id])

    def data_files(self) -> list[Path]:
        """The table, its base config, the tokenizer's files and the text (hashed by `fingerprint`)."""
        return [self.table.path, *([self.table.base_path] if self.table.base_path else []), *self.text_files()]

    def score_settings(self) -> dict[str, str | None]:
        return {"dtype": str(self.dtype).removeprefix("torch."), **super().score_settings()}

    def describe_space(self) -> list[tuple[str, str]]:
        settings = self.score_settings()
        return [("family", f"{self.table.model_type} (transformers)"), ("dtype", settings["dtype"]),
                ("tokenizer", settings["tokenizer"]), ("text", settings["text"] or "WikiText-2 valid")]


class BuiltTable(HFBenchmark):
    """`neox-mini`: the table `lpzero build neox-mini` wrote, under the data root, else in the working folder."""

    folder = NEOX_MINI_DIR

    @classmethod
    def open(cls, name: str, argument: str | None = None, data: str | os.PathLike | None = None,
             **options: Any) -> "BuiltTable":
        root = Path(data) if data is not None else default_data_root()
        for candidate in (root / cls.folder, Path(cls.folder)):
            if (candidate / TABLE_FILE).is_file():
                return cls(candidate / TABLE_FILE, root, name, **options)
        raise BenchmarkError(f"{name} is not built (looked in {root / cls.folder} and ./{cls.folder}): run "
                             f"`lpzero build {name}` (writes ./{cls.folder}), or open a built copy as "
                             f"hf:DIR/{TABLE_FILE}")


def _positions(config) -> int | None:
    """How many positions a config's model has (None: no limit it states)."""
    n = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    return int(n) if n else None


__all__ = ["BuiltTable", "HFBenchmark", "NEOX_MINI_DIR", "TABLE_FILE"]
