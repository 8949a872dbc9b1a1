"""`hf:SPACE.yaml`: a search space of transformers configs, declared as choices of config keys, no code.

```yaml
model_type: llama            # or  base: config.json  (every candidate starts from it)
tokenizer: tok/              # a local tokenizer directory
text: my_text.txt            # optional: the text of the mini-batches (default: WikiText-2 valid)
choices: {num_hidden_layers: [2, 4, 6], hidden_size: [64, 128], intermediate_size: [128, 256, 512],
          num_attention_heads: [2, 4]}
fixed: {max_position_embeddings: 128}   # optional: keys every candidate has
```

A genome is one gene per key of `choices` (the index of its value); a candidate's config is the
base's (or the family's defaults), then `fixed`, then its choices. `lpzero nas` searches it with
NSGA-II like any space; a combination transformers rejects (e.g. a width no head count divides) is
`invalid`: dropped, with its reason counted in the report. Picks are written as `config.json`
files (`save_pretrained`) that `AutoConfig.from_pretrained` and `from_config` load.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..base import Benchmark, BenchmarkError, default_data_root, file_fingerprint, read_json_object, read_yaml
from ..space import NASError, SearchSpace
from .models import HFModels, dtype_of
from ..sites import build_model, config_of, count_model_params, site_map, transformers_error
from .table import config_keys

#: the keys of a space file
SPACE_KEYS = ("model_type", "base", "tokenizer", "text", "choices", "fixed")


class HFSpace(SearchSpace):
    """The space an `hf:SPACE.yaml` declares (see the module docstring)."""

    def __init__(self, data: str | os.PathLike | None = None, path: str | os.PathLike | None = None,
                 dtype: str | None = None, text: str | os.PathLike | None = None) -> None:
        if not path:
            raise NASError("hf:FILE names a space file (a YAML file with choices): --space hf:path/to/space.yaml")
        self.path = Path(path).resolve()
        self.name = f"hf:{self.path}"
        self.data = str(data) if data is not None else str(default_data_root())
        self.dtype_name, self.text = dtype, None if text is None else str(text)
        spec = read_yaml(self.path)
        where = str(self.path)
        if not isinstance(spec, dict) or "choices" not in spec:
            raise NASError(f"{where}: expected a mapping with choices (and model_type or base, tokenizer)")
        unknown = [k for k in spec if k not in SPACE_KEYS]
        if unknown:
            raise NASError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(SPACE_KEYS)})")
        self.model_type, self.base = _family(spec, self.path.parent, where)
        known = config_keys(self.model_type)
        choices, fixed = spec["choices"], spec.get("fixed", {})
        if not isinstance(choices, dict) or not choices or not all(
                isinstance(v, list) and v for v in choices.values()):
            raise NASError(f"{where}: choices must map config keys to non-empty lists of values")
        if not isinstance(fixed, dict):
            raise NASError(f"{where}: fixed must map config keys to values")
        for key in [*choices, *fixed]:
            if key not in known:
                raise NASError(f"{where}: {key!r} is not a key of {self.model_type}'s config")
        self.genes: list[tuple[str, list]] = [(k, list(v)) for k, v in choices.items()]
        self.fixed = dict(fixed)
        if "tokenizer" not in spec or not isinstance(spec["tokenizer"], str):
            raise NASError(f"{where}: no tokenizer (a local tokenizer directory, e.g. tokenizer: tok/)")
        self.tokenizer = (self.path.parent / spec["tokenizer"]).resolve()
        if self.text is None and isinstance(spec.get("text"), str):
            self.text = str((self.path.parent / spec["text"]).resolve())
        self.sites = site_map(self.model_type)
        self._params: dict[str, dict[str, int]] = {}
        self._models: HFModels | None = None
        self.base_benchmark()  # the tokenizer and the text are checked now, before any work

    def __getstate__(self) -> dict[str, Any]:
        # a worker reopens the tokenizer and the text (read once per process)
        return {**self.__dict__, "_models": None}

    def full_config(self, config: dict) -> dict:
        """A candidate's config keys: the base's, then `fixed`, then its choices."""
        return {**{k: v for k, v in self.base.items() if k != "model_type"}, **self.fixed, **config}

    def choices(self) -> list[int]:
        return [len(values) for _, values in self.genes]

    def decode(self, genome: Sequence[int]) -> dict:
        self.check_genome(genome)
        return {key: values[g] for (key, values), g in zip(self.genes, genome)}

    def encode(self, config: dict) -> list[int]:
        genome = []
        for key, values in self.genes:
            if config.get(key) not in values:
                raise NASError(f"space {self.name}: {key} {config.get(key)!r} is not one of its choices {values}")
            genome.append(values.index(config[key]))
        return genome

    def describe(self, config: dict) -> str:
        return " ".join(f"{key}={config[key]}" for key, _ in self.genes)

    def _transformers_config(self, config: dict):
        return config_of(self.model_type, self.full_config(config))

    def invalid(self, config: dict) -> str | None:
        """Why transformers cannot build the candidate (its config class or its model refuses it), or None."""
        key = self.key(config)
        if key in self._params:
            return None
        try:
            self._params[key] = count_model_params(self._transformers_config(config), self.sites)
        except Exception as e:  # transformers raises its own types (ValueError, AssertionError, ...)
            return transformers_error(e, limit=200)
        return None

    def base_benchmark(self) -> Benchmark:
        """The candidates' tokenizer, text, objective and sites (no architectures of its own)."""
        if self._models is None:
            self._models = HFModels(self.name, self.sites, self.tokenizer, self.data, self.text,
                                    self._smallest("vocab_size"), self._smallest("max_position_embeddings"))
        return self._models

    def _smallest(self, key: str) -> int | None:
        """The smallest value of `key` a candidate can have: of its choices, else what every candidate has (the
        fixed value, the base's, the family's default); None where the family's config has no such key."""
        first = {k: values[0] for k, values in self.genes}
        values = dict(self.genes).get(key) or [getattr(self._transformers_config(first), key, None)]
        values = [int(v) for v in values if v is not None]
        return min(values) if values else None

    def build_model(self, config: dict, seed: int, device: str | torch.device = "cpu") -> nn.Module:
        reason = self.invalid(config)
        if reason is not None:
            raise NASError(f"space {self.name}: {self.describe(config)} cannot be built: {reason}")
        return build_model(self._transformers_config(config), self.sites, seed, dtype_of(self.dtype_name)).to(device)

    def count_params(self, config: dict) -> dict[str, int]:
        reason = self.invalid(config)
        if reason is not None:
            raise NASError(f"space {self.name}: {self.describe(config)} cannot be built: {reason}")
        return dict(self._params[self.key(config)])

    def write(self, configs: Sequence[dict], out: Path) -> list[Path]:
        """`candidate_<k>/config.json` per config (`save_pretrained`: `AutoConfig.from_pretrained` reads it)."""
        paths = []
        for k, config in enumerate(configs):
            folder = Path(out) / f"candidate_{k}"
            self._transformers_config(config).save_pretrained(folder)
            paths.append(folder / "config.json")
        return paths

    def fingerprint(self) -> str:
        """The space file, its base config, the tokenizer and the text, and the dtype."""
        h = hashlib.sha1(json.dumps([self.genes, self.fixed, self.base, self.dtype_name], default=str).encode())
        for path in self.base_benchmark().data_files():
            h.update(f"{Path(path).name}:{file_fingerprint(path)}".encode())
        return h.hexdigest()[:16]


def _family(spec: dict, folder: Path, where: str) -> tuple[str, dict]:
    """(model_type, base config keys) of a space file: `model_type`, or `base`'s config.json."""
    if ("model_type" in spec) == ("base" in spec):
        raise NASError(f"{where}: give exactly one of model_type and base (a config.json)")
    if "base" in spec:
        base_path = (folder / str(spec["base"])).resolve()
        try:
            base = read_json_object(base_path)
        except BenchmarkError as e:
            raise NASError(str(e)) from None
        if not isinstance(base.get("model_type"), str):
            raise NASError(f"{base_path}: no model_type (a config.json saved by transformers has one)")
        return base["model_type"], base
    if not isinstance(spec["model_type"], str):
        raise NASError(f"{where}: model_type must be a transformers model_type, not {spec['model_type']!r}")
    return spec["model_type"], {}


__all__ = ["HFSpace", "SPACE_KEYS"]
