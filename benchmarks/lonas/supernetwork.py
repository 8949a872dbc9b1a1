"""The super-network: a frozen LLaMA base with LoNAS's LoRA adapters, and where its parts are.

This is the one module of the LoNAS package that uses transformers and peft. They are
imported inside the functions that need them: the `lpzero` command imports this
package, and peft alone takes seconds to import.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from ..base import BenchmarkError
from .space import LONAS_DROPOUT, LORA_TARGETS, LoNASSpace


def lora_config(space: LoNASSpace, dropout: float = LONAS_DROPOUT, rank_pattern: dict[str, int] | None = None):
    """LoNAS's LoRA configuration for this space (rank r_max, alpha, the six target modules).

    `rank_pattern` (module -> rank) gives some modules a smaller rank; their alpha is
    scaled with it (`alpha_pattern`), so each keeps LoNAS's scaling alpha / r_max.
    """
    from peft import LoraConfig

    patterns = {}
    if rank_pattern is not None:
        patterns = {"rank_pattern": rank_pattern,
                    "alpha_pattern": {k: space.lora_alpha * v / space.lora_rank for k, v in rank_pattern.items()}}
    return LoraConfig(r=space.lora_rank, lora_alpha=space.lora_alpha, lora_dropout=dropout,
                      target_modules=list(LORA_TARGETS), bias="none", task_type="CAUSAL_LM", **patterns)


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence what a user cannot act on while models load or save: transformers' progress
    bars and a deprecation warning peft triggers inside transformers."""
    from transformers.utils import logging as transformers_logging

    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            yield
    finally:
        if bars:
            transformers_logging.enable_progress_bar()


def new_llama(vocab_size: int, hidden_size: int, intermediate_size: int, num_layers: int, num_heads: int,
              max_positions: int) -> nn.Module:
    """A randomly initialised LLaMA (untied embeddings, eager attention) from torch's global generator."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
                         num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_heads,
                         max_position_embeddings=max_positions, tie_word_embeddings=False,
                         attn_implementation="eager")
    return LlamaForCausalLM(config)


def load_base(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """A local `save_pretrained` LLaMA directory, in float32 with eager attention (S is observable)."""
    from transformers import LlamaForCausalLM

    path = Path(path)
    if not (path / "config.json").is_file():
        raise BenchmarkError(f"{path}: not a model directory (no config.json; expected a save_pretrained layout)")
    try:
        with quiet_loading():
            model = LlamaForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=torch.float32,
                                                     attn_implementation="eager")
    except (OSError, ValueError) as e:
        raise BenchmarkError(f"{path}: cannot load a LLaMA model: {e}") from None
    return model.to(device)


def make_supernetwork(base: nn.Module, space: LoNASSpace, adapter: str | os.PathLike | None = None) -> nn.Module:
    """`base` frozen with LoNAS LoRA adapters: new ones, or a local peft adapter directory.

    The adapter's rank and alpha must be the space's r_max and alpha (slicing keeps
    the scaling alpha / r_max).
    """
    from peft import PeftModel, get_peft_model

    if adapter is None:
        with quiet_loading():
            model = get_peft_model(base, lora_config(space))
    else:
        path = Path(adapter)
        if not (path / "adapter_config.json").is_file():
            raise BenchmarkError(f"{path}: not a peft adapter directory (no adapter_config.json)")
        with quiet_loading():
            model = PeftModel.from_pretrained(base, str(path), is_trainable=False)
        cfg = model.peft_config["default"]
        if cfg.r != space.lora_rank or cfg.lora_alpha != space.lora_alpha:
            raise BenchmarkError(f"{path}: adapter has r={cfg.r}, alpha={cfg.lora_alpha}; the space "
                                 f"{space.name!r} slices r={space.lora_rank}, alpha={space.lora_alpha}")
    for name, p in model.named_parameters():
        p.requires_grad_(".lora_" in name)
    return model


def inner_model(model: nn.Module) -> nn.Module:
    """The LlamaForCausalLM inside a peft model (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layers of a (peft-wrapped) LlamaForCausalLM."""
    try:
        return inner_model(model).model.layers
    except AttributeError:
        raise BenchmarkError(f"expected a LLaMA model (model.layers), got {type(model).__name__}") from None


def layers_prefix(model: nn.Module) -> str:
    """The parameter-name prefix of the decoder layers, e.g. "base_model.model.model.layers"."""
    layers = decoder_layers(model)
    for name, module in model.named_modules():
        if module is layers:
            return name
    raise BenchmarkError("cannot find the decoder layers in the model")
