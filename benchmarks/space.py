"""The interface a NAS search space implements, and its candidates seen as a benchmark.

A model family declares its space beside its benchmark (`lts/space.py`, `lonas/search_space.py`)
and registers it in `lpzero.benchmarks.SPACES`; `lpzero.nas` searches any of them.

A space is a set of architectures coded as fixed-length integer genomes (gene i takes
one of `choices()[i]` values). `decode` turns a genome into the space's own config (a
JSON-able dict) and drops genes that do not matter (the widths of layers beyond
`n_layer`), so two genomes that describe the same architecture decode to the same
config and the same `key`: scores are memoised, and populations deduplicated, by key.

A proxy scores a candidate through the `Benchmark` interface (`build_model`, `loss`,
`zc_sites`, `make_batch`); `SpaceView` gives an open space's candidates that interface,
with the candidate keys as architecture ids.
"""
from __future__ import annotations

import abc
import json
import math
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from lpzero.errors import LPZeroError

from .base import Architecture, Batch, Benchmark, ZCSites


class NASError(LPZeroError):
    """Bad NAS input: an unknown space, a genome or config outside the space, a budget no architecture meets."""


class SearchSpace(abc.ABC):
    """Architectures as integer genomes; what `lpzero nas` searches.

    Subclasses must pickle (an executor sends the space to each task): keep open
    benchmarks out of the pickled state and reopen them with `open_benchmark`, which
    opens each once per process.
    """

    #: the name the space was opened by (reports, checkpoints)
    name: str = ""
    #: whether `--ids` / `--limit` select its architectures (a tabular space: constructed with `ids=`)
    selects_architectures: bool = False

    @abc.abstractmethod
    def choices(self) -> list[int]:
        """Number of values of each gene; the genome length is `len(choices())`."""

    @abc.abstractmethod
    def decode(self, genome: Sequence[int]) -> dict:
        """The config a genome describes, canonical: genes that do not matter are left out."""

    @abc.abstractmethod
    def encode(self, config: dict) -> list[int]:
        """A genome that decodes to `config` (genes that do not matter are 0); NASError outside the space."""

    @abc.abstractmethod
    def base_benchmark(self) -> Benchmark:
        """The benchmark whose mini-batches, objective (`loss`) and `zc_sites` the candidates' models share."""

    @abc.abstractmethod
    def build_model(self, config: dict, seed: int, device: str | torch.device = "cpu") -> nn.Module:
        """The candidate with random weights drawn from `seed`."""

    @abc.abstractmethod
    def count_params(self, config: dict) -> dict[str, int]:
        """Parameter counts of the candidate's model; "total" at least (no model needs to be built)."""

    @abc.abstractmethod
    def write(self, configs: Sequence[dict], out: Path) -> list[Path]:
        """The configs in the space's own file format under folder `out`; the files written."""

    def key(self, config: dict) -> str:
        """The candidate's identity: memo and deduplication key."""
        return json.dumps(config, sort_keys=True, separators=(",", ":"))

    def config(self, key: str) -> dict:
        """The config whose `key` this is."""
        return json.loads(key)

    def describe(self, config: dict) -> str:
        """A short one-line description for tables."""
        return self.key(config)

    def size(self) -> int:
        """An upper bound of the number of distinct architectures (the number of genomes)."""
        return math.prod(self.choices())

    def all_genomes(self) -> list[list[int]] | None:
        """Every architecture's genome when the space is to be scored exhaustively (tabular); else None."""
        return None

    def invalid(self, config: dict) -> str | None:
        """Why the candidate cannot be built (a combination of choices its models refuse), or None: an invalid
        candidate is dropped by a search, its reason counted. Default: every genome is a model."""
        return None

    def ground_truth(self, config: dict) -> float | None:
        """The trained quality (higher = better) where the space knows it (tabular), else None."""
        return None

    def smallest(self) -> dict | None:
        """The config with the fewest parameters, when known: a `--max-params` below it is an error."""
        return None

    def proxy_benchmark(self) -> Benchmark:
        """The benchmark proxies score candidates on; its architecture ids are the candidates' keys."""
        return SpaceView(self)

    def fingerprint(self) -> str:
        """A hash of what the candidates' scores depend on besides their configs (a checkpoint of another
        one is not resumed); default: the base benchmark's (`Benchmark.fingerprint`)."""
        return self.base_benchmark().fingerprint()

    def canonical(self, genome: Sequence[int]) -> list[int]:
        """The canonical genome of the architecture `genome` describes."""
        return self.encode(self.decode(genome))

    def check_genome(self, genome: Sequence[int]) -> None:
        """NASError unless `genome` has the space's length and every gene is within its choices."""
        choices = self.choices()
        if len(genome) != len(choices):
            raise NASError(f"space {self.name}: a genome has {len(choices)} genes, not {len(genome)}")
        for i, (g, n) in enumerate(zip(genome, choices)):
            if not (isinstance(g, int) and 0 <= g < n):
                raise NASError(f"space {self.name}: gene {i} is {g!r}, not one of 0..{n - 1}")


class SpaceView(Benchmark):
    """An open space's candidates as a `Benchmark`: ids are candidate keys, everything else is the base's.

    Baselines (`ProxyContext`) and `extract_inputs` read a candidate through this, as they read
    a benchmark's architecture. It has no list of ids and no ground truth.
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        base = space.base_benchmark()
        self.base = base
        # the base's name selects the proxies' recipe (e.g. FlexiBERT's), so the view keeps it
        self.name = base.name
        self.raw_metric = base.raw_metric
        self.default_batch_size, self.default_seq_len = base.default_batch_size, base.default_seq_len
        self.paper_batch_size, self.paper_seq_len = base.paper_batch_size, base.paper_seq_len

    def max_seq_len(self) -> int | None:
        return self.base.max_seq_len()

    def ids(self) -> list[str]:
        return []

    def check_id(self, arch_id: str) -> None:
        self.space.config(arch_id)

    def architecture(self, arch_id: str) -> Architecture:
        return Architecture(arch_id, self.space.config(arch_id), math.nan, math.nan)

    def build_model(self, arch_id: str, seed: int, device: str | torch.device = "cpu") -> nn.Module:
        return self.space.build_model(self.space.config(arch_id), seed, device)

    def count_params(self, arch_id: str) -> dict[str, int]:
        return self.space.count_params(self.space.config(arch_id))

    def make_batch(self, seed: int, batch_size: int | None = None, seq_len: int | None = None) -> Batch:
        return self.base.make_batch(seed, batch_size, seq_len)

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return self.base.loss(model, batch)

    def zc_sites(self, model: nn.Module) -> ZCSites:
        return self.base.zc_sites(model)
