"""The super-network: a frozen LLaMA-family base with LoNAS's LoRA adapters, and where its parts are.

`DECODERS` is the one table of the decoder families LoNAS slices (LLaMA, Mistral, Qwen2,
Qwen3), keyed by `config.model_type`: where the decoder layers are and what their
attention and MLP projections are called.

This is the one module of the LoNAS package that uses transformers and peft. They are
imported inside the functions that need them: the `lpzero` command imports this
package, and peft alone takes seconds to import.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from ..base import BenchmarkError
from .space import LONAS_DROPOUT, LORA_TARGETS, LoNASSpace


@dataclass(frozen=True)
class Decoder:
    """Where a decoder family keeps its parts (names relative to the causal-LM model / a decoder layer)."""

    layers: str = "model.layers"
    attention: str = "self_attn"
    q: str = "q_proj"
    k: str = "k_proj"
    v: str = "v_proj"
    o: str = "o_proj"
    mlp: str = "mlp"
    gate: str = "gate_proj"
    up: str = "up_proj"
    down: str = "down_proj"

    def module(self, role: str) -> str:
        """A projection's name in a decoder layer, e.g. "self_attn.q_proj" for role "q"."""
        return f"{self.attention if role in ('q', 'k', 'v', 'o') else self.mlp}.{getattr(self, role)}"


#: the decoder families LoNAS slices, by `config.model_type`: each has q/k/v/o attention
#: projections and a gated MLP (gate, up, down), which is all the slicing rules need. The
#: space's groups (`lonas_space`) name modules as these entries do; a family with other
#: names needs its own entry here and a space that names them.
DECODERS: dict[str, Decoder] = {"llama": Decoder(), "mistral": Decoder(), "qwen2": Decoder(), "qwen3": Decoder()}
#: the dtypes a base loads in ("auto": the checkpoint's stored dtype)
DTYPES = ("auto", "float32", "bfloat16", "float16")


def decoder_of(model_type: str | None, where: str = "model") -> Decoder:
    """The `DECODERS` entry of `model_type` (BenchmarkError naming the families otherwise)."""
    if model_type not in DECODERS:
        raise BenchmarkError(f"{where}: model_type {model_type!r} is not a LLaMA-family decoder "
                             f"({', '.join(DECODERS)})")
    return DECODERS[model_type]


def stored_dtype(config: dict, dtype: str = "auto", where: str = "config.json") -> torch.dtype:
    """The dtype to load in: `dtype`, or for "auto" the config's `dtype`/`torch_dtype` (float32 if absent)."""
    if dtype not in DTYPES:
        raise BenchmarkError(f"dtype={dtype!r}: expected one of {', '.join(DTYPES)}")
    if dtype == "auto":
        dtype = config.get("dtype") or config.get("torch_dtype") or "float32"
        if dtype not in DTYPES[1:]:
            raise BenchmarkError(f"{where}: stored dtype {dtype!r} is not one of {', '.join(DTYPES[1:])} "
                                 "(choose one with dtype=)")
    return getattr(torch, dtype)


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


def load_base(path: str | os.PathLike, device: str | torch.device = "cpu",
              dtype: torch.dtype = torch.float32) -> nn.Module:
    """A local `save_pretrained` LLaMA-family directory (`DECODERS`), in `dtype` with eager attention
    (S is observable)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    path = Path(path)
    if not (path / "config.json").is_file():
        raise BenchmarkError(f"{path}: not a model directory (no config.json; expected a save_pretrained layout)")
    try:
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
        decoder_of(config.model_type, str(path / "config.json"))
        with quiet_loading():
            model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=dtype,
                                                         attn_implementation="eager")
    except (OSError, ValueError) as e:
        raise BenchmarkError(f"{path}: cannot load a LLaMA-family model: {e}") from None
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
    """The causal LM (e.g. LlamaForCausalLM) inside a peft model (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def model_decoder(model: nn.Module) -> Decoder:
    """The `DECODERS` entry of a (peft-wrapped) causal LM, by its config's model_type."""
    config = getattr(inner_model(model), "config", None)
    return decoder_of(getattr(config, "model_type", None), type(model).__name__)


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layers of a (peft-wrapped) LLaMA-family causal LM."""
    try:
        return inner_model(model).get_submodule(model_decoder(model).layers)
    except AttributeError:
        raise BenchmarkError(f"expected a LLaMA-family model (model.layers), got {type(model).__name__}") from None


def layers_prefix(model: nn.Module) -> str:
    """The parameter-name prefix of the decoder layers, e.g. "base_model.model.model.layers"."""
    layers = decoder_layers(model)
    for name, module in model.named_modules():
        if module is layers:
            return name
    raise BenchmarkError("cannot find the decoder layers in the model")
