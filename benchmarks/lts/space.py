"""The LiteTransformerSearch (Archai) GPT-2 space, as an open search space (`--space lts`).

Archai's `hf_gpt2_flex` space: `n_layer`, `d_model`, the adaptive embedding's `d_embed` and
`div_val`, and per layer `n_head` and `d_inner`. The choices are read from the trained
architectures of a results directory (default: the GPT-2 benchmark's 200), so the search
stays within the ranges the benchmark covers: every value of `n_layer` from the smallest to
the largest, the values of `d_model`, `d_embed`, `div_val` and `n_head` that occur, and
`d_inner` on a grid of step `d_inner_step` from the smallest to the largest width seen.
Every other config key (vocabulary, cutoffs, tied weights, `tgt_len`, ...) is the same in all
of the benchmark's configs and is copied from its first one.

Genome: [n_layer, d_model, d_embed, div_val] then (n_head, d_inner) for each of the
`max n_layer` layers; the genes of layers beyond `n_layer` do not matter and are left out by
`decode`. Chosen architectures are written as Archai `model_config.yaml` files that
`LTSBenchmark` and `gpt2_flex` read back.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import yaml
from torch import nn

from lpzero.files import atomic_write_text

from .. import canonical_name, open_benchmark
from ..base import Benchmark, BenchmarkError, ConfigError
from ..space import NASError, SearchSpace
from .benchmark import LTSBenchmark
from .gpt2_flex import FlexConfig

#: genes before the per-layer ones
GLOBAL_GENES = ("n_layer", "d_model", "d_embed", "div_val")
PER_LAYER = ("n_head", "d_inner")
DEFAULT_D_INNER_STEP = 64
CONFIG_FILE = "model_config.yaml"
PARAMS_FILE = "params_summary.yaml"


class LTSSpace(SearchSpace):
    """Archai's LTS space, with choices read from a results directory; its candidates are of the directory's
    model family (`families`: GPT-2 flex or Transformer-XL)."""

    #: the benchmark whose directory `--space NAME` without a path reads, and that space's name
    DEFAULT_BENCHMARK, DEFAULT_NAME = "gpt2", "lts"

    def __init__(self, data: str | os.PathLike | None = None, path: str | os.PathLike | None = None,
                 d_inner_step: int = DEFAULT_D_INNER_STEP) -> None:
        if d_inner_step < 1:
            raise NASError(f"d_inner step {d_inner_step}: at least 1")
        self.data = None if data is None else str(data)
        self.path = None if path is None else str(path)
        # the default directory is a shipped benchmark's ("gpt2"), so proxies found on it match its name;
        # the path resolved: one directory is one space however it is spelled (checkpoints, output folders)
        self.benchmark_name = self.DEFAULT_BENCHMARK if path is None else canonical_name(f"lts:{path}")
        self.name = self.DEFAULT_NAME if path is None else self.benchmark_name
        self._bench: LTSBenchmark | None = None
        configs = [self.bench.architecture(a).config for a in self.bench.ids()]
        self.values, self.template = derive_choices(configs, d_inner_step, self.bench.family.parse)
        self.max_layer = max(self.values["n_layer"])

    def __getstate__(self) -> dict[str, Any]:
        # a worker reopens the benchmark by name
        return {**self.__dict__, "_bench": None}

    @property
    def bench(self) -> LTSBenchmark:
        """The results directory as a benchmark, opened on first use in each process."""
        if self._bench is None:
            bench = open_benchmark(self.benchmark_name, self.data)
            if not isinstance(bench, LTSBenchmark):
                raise NASError(f"space {self.name}: {self.benchmark_name!r} is not an LTS results directory")
            self._bench = bench
        return self._bench

    def choices(self) -> list[int]:
        per_layer = [len(self.values[k]) for k in PER_LAYER] * self.max_layer
        return [len(self.values[k]) for k in GLOBAL_GENES] + per_layer

    def decode(self, genome: Sequence[int]) -> dict:
        self.check_genome(genome)
        v = self.values
        config: dict[str, Any] = {k: v[k][genome[i]] for i, k in enumerate(GLOBAL_GENES)}
        layers = genome[len(GLOBAL_GENES):]
        n = config["n_layer"]
        config["n_head"] = [v["n_head"][layers[2 * i]] for i in range(n)]
        config["d_inner"] = [v["d_inner"][layers[2 * i + 1]] for i in range(n)]
        return config

    def encode(self, config: dict) -> list[int]:
        try:
            genome = [self._index(k, config[k]) for k in GLOBAL_GENES]
            n = config["n_layer"]
            heads, inner = list(config["n_head"]), list(config["d_inner"])
        except (KeyError, TypeError):
            raise NASError(f"space {self.name}: a config needs {', '.join(GLOBAL_GENES + PER_LAYER)}") from None
        if len(heads) != n or len(inner) != n:
            raise NASError(f"space {self.name}: n_head and d_inner need {n} entries (n_layer), "
                           f"got {len(heads)} and {len(inner)}")
        for h, d in zip(heads, inner):
            genome += [self._index("n_head", h), self._index("d_inner", d)]
        return genome + [0] * (2 * (self.max_layer - n))

    def _index(self, key: str, value: Any) -> int:
        if value not in self.values[key]:
            raise NASError(f"space {self.name}: {key} {value!r} is not one of its choices "
                           f"({', '.join(map(str, self.values[key]))})")
        return self.values[key].index(value)

    def model_config(self, config: dict) -> dict:
        """The whole Archai model config of a candidate: the benchmark's fixed keys and the candidate's."""
        return {**self.template, **config}

    def describe(self, config: dict) -> str:
        return (f"L{config['n_layer']} d{config['d_model']} e{config['d_embed']}/{config['div_val']} "
                f"h{'.'.join(map(str, config['n_head']))} f{'.'.join(map(str, config['d_inner']))}")

    def base_benchmark(self) -> Benchmark:
        return self.bench

    def build_model(self, config: dict, seed: int, device: str | torch.device = "cpu") -> nn.Module:
        family = self.bench.family
        return family.build(family.parse(self.model_config(config)), seed, device)

    def count_params(self, config: dict) -> dict[str, int]:
        family = self.bench.family
        return family.count(family.parse(self.model_config(config)))

    def smallest(self) -> dict:
        v = self.values
        n = min(v["n_layer"])
        base = {"n_layer": n, "d_model": min(v["d_model"]), "n_head": [v["n_head"][0]] * n,
                "d_inner": [min(v["d_inner"])] * n}
        # the embedding's size depends on d_embed and div_val together: try them all (on the meta device)
        candidates = [{**base, "d_embed": e, "div_val": d} for e in v["d_embed"] for d in v["div_val"]]
        return min(candidates, key=lambda c: self.count_params(c)["total"])

    def write(self, configs: Sequence[dict], out: Path) -> list[Path]:
        """An Archai results directory: `config_<k>/j0/model_config.yaml` and `params_summary.yaml`."""
        out = Path(out)
        paths, params = [], {}
        for k, config in enumerate(configs):
            path = out / f"config_{k}" / "j0" / CONFIG_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, yaml.safe_dump(self.model_config(config), sort_keys=True))
            paths.append(path)
            params[f"config_{k}_j0"] = self.count_params(config)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / PARAMS_FILE, yaml.safe_dump(params, sort_keys=True))
        return paths + [out / PARAMS_FILE]


def derive_choices(configs: Sequence[dict], d_inner_step: int = DEFAULT_D_INNER_STEP,
                   parse: Callable[[dict], Any] = FlexConfig.from_dict) -> tuple[dict, dict]:
    """(choices per gene, fixed keys) of a set of Archai model configs, read with `parse` (the family's; see
    the module docstring)."""
    if not configs:
        raise NASError("no model configs to derive the LTS space from")
    try:
        parsed = [parse(c) for c in configs]
    except (ConfigError, TypeError, ValueError) as e:
        raise BenchmarkError(f"a model config lacks or mistypes an architecture key: {e}") from None
    n_layers = [c.n_layer for c in parsed]
    inner = [d for c in parsed for d in c.d_inner]
    values = {
        "n_layer": list(range(min(n_layers), max(n_layers) + 1)),
        "d_model": sorted({c.d_model for c in parsed}),
        "d_embed": sorted({c.d_embed for c in parsed}),
        "div_val": sorted({c.div_val for c in parsed}),
        "n_head": sorted({h for c in parsed for h in c.n_head}),
        "d_inner": list(range(min(inner), max(inner) + 1, d_inner_step)),
    }
    bad = [h for h in values["n_head"] if any(d % h for d in values["d_model"])]
    if bad:
        raise NASError(f"n_head {bad} does not divide every d_model {values['d_model']}: the space would hold "
                       "architectures that cannot be built")
    genes = set(GLOBAL_GENES) | set(PER_LAYER)
    template = {k: v for k, v in configs[0].items() if k not in genes}
    return values, template



class TransXLSpace(LTSSpace):
    """The LTS space of the shipped Transformer-XL benchmark (`--space transxl`)."""

    DEFAULT_BENCHMARK, DEFAULT_NAME = "transxl", "transxl"
