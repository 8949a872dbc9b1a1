"""One transformers model as a benchmark of one architecture: what `lpzero score` and `score_model` score.

`OneModel` holds a model (any `PreTrainedModel` of a family with a `SiteMap`) as the architecture
`"model"`, with `models.HFModels`' mini-batches, objective and sites, or with a batch given by the
caller. `load_one(path, ...)` opens what a user has: a checkpoint directory (`save_pretrained`: its
own weights and dtype, its own tokenizer unless another is named) or a `config.json` (seeded random
weights in `dtype`). A half-precision model on a CPU without half arithmetic gets lpzero's float32
backward products (`benchmarks.half_cpu`), as LoNAS sub-networks do.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..base import Batch, BenchmarkError, read_json_object
from ..half_cpu import fast_half_backward
from ..checkpoints import quiet_loading
from .models import HFModels, dtype_of
from ..sites import build_model, config_of, site_map, transformers_error

#: the architecture id of the one model
ONE = "model"
#: weight files of a checkpoint directory (without one, a directory's config.json is built with random weights)
WEIGHT_PATTERNS = ("*.safetensors", "*.bin")


class OneModel(HFModels):
    """`model` as the one architecture "model"; `batch`, if given, is every mini-batch."""

    def __init__(self, model: nn.Module, tokenizer: Any, data_root: str | os.PathLike | None = None,
                 text: str | os.PathLike | None = None, batch: Batch | None = None, name: str = ONE) -> None:
        config = getattr(model, "config", None)
        model_type = getattr(config, "model_type", None)
        if model_type is None:
            raise BenchmarkError(f"{type(model).__name__} has no config.model_type: give a transformers model")
        self.model = model
        self.batch = batch
        positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        if tokenizer is None and batch is None:
            raise BenchmarkError("score a model on a batch of token ids or with a tokenizer (on a text): give one")
        super().__init__(name, site_map(model_type), tokenizer, data_root, text, getattr(config, "vocab_size", None),
                         positions)

    def ids(self) -> list[str]:
        return [ONE]

    def check_id(self, arch_id: str) -> None:
        if arch_id != ONE:
            raise BenchmarkError(f"{self.name}: the one architecture is {ONE!r}, not {arch_id!r}")

    def build_model(self, arch_id: str, seed: int, device: str | torch.device = "cpu") -> nn.Module:
        """The model itself (its own weights: `seed` is not used), on `device`."""
        self.check_id(arch_id)
        return self.model.to(device)

    def count_params(self, arch_id: str) -> dict[str, int]:
        self.check_id(arch_id)
        total = sum(p.numel() for p in self.model.parameters())
        embedding = sum(p.numel() for p in self.model.get_input_embeddings().parameters())
        return {"total": total, "embedding": embedding, "nonembedding": total - embedding}

    def make_batch(self, seed: int, batch_size: int | None = None, seq_len: int | None = None) -> Batch:
        """The batch given, else random windows of the text (`HFModels.make_batch`)."""
        if self.batch is not None:
            return self.batch
        return super().make_batch(seed, batch_size, seq_len)

    def check_batch(self, batch_size: int, seq_len: int) -> None:
        if self.batch is None:
            super().check_batch(batch_size, seq_len)


def load_one(path: str | os.PathLike, tokenizer: str | os.PathLike | None = None, data_root: str | os.PathLike | None = None,
             text: str | os.PathLike | None = None, dtype: str | None = None, seed: int = 0) -> OneModel:
    """The model at `path` as a `OneModel` (see the module docstring); its tokenizer: `tokenizer`, else the
    checkpoint's (or the config's) folder. BenchmarkError naming what is missing or wrong."""
    from transformers import AutoConfig

    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if not (path / "config.json" if path.is_dir() else path).is_file():
        raise BenchmarkError(f"{path}: not a checkpoint directory (config.json and weights) or a config.json")
    config_path = path / "config.json" if path.is_dir() else path
    model_type = read_json_object(config_path).get("model_type")
    if not isinstance(model_type, str):
        raise BenchmarkError(f"{config_path}: no model_type (a config.json saved by transformers has one)")
    sites = site_map(model_type)  # a family without a SiteMap: one line naming the known ones
    weights = path.is_dir() and any(f for pattern in WEIGHT_PATTERNS for f in path.glob(pattern))
    try:
        if weights:
            with quiet_loading():
                model = _auto(sites).from_pretrained(str(path), dtype="auto" if dtype in (None, "auto") else
                                                     dtype_of(dtype), attn_implementation="eager",
                                                     local_files_only=True).eval()
        else:
            keys = AutoConfig.from_pretrained(str(config_path), local_files_only=True).to_dict()
            keys = {k: v for k, v in keys.items() if k not in ("model_type", "transformers_version", "architectures")}
            model = build_model(config_of(model_type, keys), sites, seed, dtype_of(dtype))
    except BenchmarkError:
        raise
    except Exception as e:  # transformers raises its own types for a checkpoint it cannot read
        raise BenchmarkError(f"{path}: transformers cannot load it: {transformers_error(e)}") from None
    if next(model.parameters()).dtype in (torch.bfloat16, torch.float16):
        fast_half_backward(model)
    return OneModel(model, Path(tokenizer) if tokenizer is not None else folder, data_root, text, name=str(path))


def _auto(sites):
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    return AutoModelForMaskedLM if sites.encoder else AutoModelForCausalLM


__all__ = ["ONE", "OneModel", "load_one"]
