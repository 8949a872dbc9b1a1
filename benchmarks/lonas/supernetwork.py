"""The super-network: a frozen LLaMA-family base with LoNAS's LoRA adapters, and where its parts are.

`DECODERS` is the one table of the decoder families LoNAS slices (LLaMA, Mistral, Qwen2,
Qwen3), keyed by `config.model_type`: where the decoder layers are and what their
attention and MLP projections are called.

This is the one module of the LoNAS package that uses transformers and peft. They are
imported inside the functions that need them: the `lpzero` command imports this
package, and peft alone takes seconds to import.
"""
from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..base import BenchmarkError, read_json_object
from ..checkpoints import quiet_loading
from .space import LONAS_DROPOUT, LORA_TARGETS, LoNASSpace, positive_int


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
#: the projections of a decoder layer (`Decoder` roles)
_ROLES = ("q", "k", "v", "o", "gate", "up", "down")


def decoder_of(model_type: str | None, where: str = "model") -> Decoder:
    """The `DECODERS` entry of `model_type` (BenchmarkError naming the families otherwise)."""
    if model_type not in DECODERS:
        raise BenchmarkError(f"{where}: model_type {model_type!r} is not a LLaMA-family decoder "
                             f"({', '.join(DECODERS)})")
    return DECODERS[model_type]


def check_space_modules(space: LoNASSpace, model_type: str, where: str) -> None:
    """BenchmarkError naming `where` and the group when a group of `space` names a module that is not
    a projection of this decoder family's layers."""
    d = decoder_of(model_type, where)
    known = {d.module(role) for role in _ROLES}
    for g in space.groups:
        unknown = [m for m in g.modules + g.inputs if m not in known]
        if unknown:
            raise BenchmarkError(f"{where}: group {g.name} names {unknown}, not projections of a {model_type} "
                                 f"layer ({', '.join(sorted(known))})")


#: the config.json keys every check reads: positive integers in every LLaMA-family config
CONFIG_SIZES = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads", "vocab_size")
#: config.json keys that are positive integers where present (null: the family's default)
OPTIONAL_SIZES = ("num_key_value_heads", "head_dim", "max_position_embeddings")
#: the file peft keeps an adapter's settings in
ADAPTER_CONFIG = "adapter_config.json"
#: a decoder layer's weight or LoRA matrix in a checkpoint's tensor names: (layer, projection, lora_A/lora_B/None)
_LAYER_TENSOR = re.compile(r"layers\.(\d+)\.[A-Za-z_]+\.([A-Za-z_]+)(?:\.base_layer)?"
                           r"(?:\.(lora_[AB])(?:\.[A-Za-z_]+)?)?\.weight$")


def check_base_config(config: dict, where: str) -> dict:
    """`config` (config.json's object) if it is a LLaMA-family decoder's with positive integer sizes; else
    BenchmarkError naming `where` and the key."""
    missing = [k for k in CONFIG_SIZES if k not in config]
    if missing or config.get("model_type", "llama") not in DECODERS:
        raise BenchmarkError(f"{where}: not a LLaMA config (a LLaMA-family decoder: {', '.join(DECODERS)}; "
                             f"model_type {config.get('model_type')!r}, missing {missing})")
    for key in CONFIG_SIZES + tuple(k for k in OPTIONAL_SIZES if config.get(k) is not None):
        positive_int(config[key], where, key)
    if config["hidden_size"] % config["num_attention_heads"] and config.get("head_dim") is None:
        raise BenchmarkError(f"{where}: hidden_size {config['hidden_size']} is not a multiple of "
                             f"num_attention_heads {config['num_attention_heads']} (and no head_dim)")
    return config


def projection_shapes(config: dict) -> dict[str, tuple[int, int]]:
    """(out, in) features of each projection of a decoder layer, by its name (q_proj, ..., down_proj),
    from a checked config (`check_base_config`)."""
    d = decoder_of(config.get("model_type", "llama"))
    hidden, inner = config["hidden_size"], config["intermediate_size"]
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    q = config["num_attention_heads"] * head_dim
    kv = (config.get("num_key_value_heads") or config["num_attention_heads"]) * head_dim
    return {d.q: (q, hidden), d.k: (kv, hidden), d.v: (kv, hidden), d.o: (hidden, q), d.gate: (inner, hidden),
            d.up: (inner, hidden), d.down: (hidden, inner)}


def safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """The tensor shapes a safetensors file's header declares, without reading the weights.

    BenchmarkError naming the file when the header is unreadable or the file is shorter or longer
    than the header's offsets say (a truncated copy, a torn download).
    """
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > size - 8:
                raise ValueError(f"a header of {length} bytes in a file of {size}")
            header = json.loads(f.read(length).decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        shapes, end = {}, 0
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            shapes[name] = [int(n) for n in entry["shape"]]
            end = max(end, int(entry["data_offsets"][1]))
    except (struct.error, ValueError, UnicodeDecodeError, KeyError, TypeError, IndexError) as e:
        raise BenchmarkError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e})") from None
    if size != 8 + length + end:
        raise BenchmarkError(f"{path}: {size} bytes, but its header describes {8 + length + end} "
                             "(a truncated or damaged copy)")
    return shapes


def check_base_weights(folder: Path, config: dict) -> None:
    """The base's safetensors files are whole and hold the shapes config.json gives (headers only)."""
    files = sorted(folder.glob("model*.safetensors"))
    if not files and not any(folder.glob("pytorch_model*.bin")):
        raise BenchmarkError(f"{folder}: no model weights (model.safetensors or pytorch_model.bin)")
    shapes = projection_shapes(config)
    where = f"{folder / 'config.json'}'s sizes"
    for path in files:
        for name, shape in safetensors_shapes(path).items():
            found = _LAYER_TENSOR.search(name)
            if name.endswith("embed_tokens.weight"):
                expected = [config["vocab_size"], config["hidden_size"]]
            elif found and found.group(2) in shapes and found.group(3) is None:
                _check_layer(path, name, int(found.group(1)), config)
                expected = list(shapes[found.group(2)])
            else:
                continue
            if shape != expected:
                raise BenchmarkError(f"{path}: {name} has shape {shape}; {where} give {expected}")


def read_adapter_config(folder: Path) -> dict:
    """A peft adapter directory's adapter_config.json, its r and lora_alpha checked (BenchmarkError
    naming the file and the key)."""
    if not folder.is_dir():
        raise BenchmarkError(f"{folder}: adapter directory not found")
    path = folder / ADAPTER_CONFIG
    if not path.is_file():
        raise BenchmarkError(f"{folder}: not a peft adapter directory (no {ADAPTER_CONFIG})")
    config = read_json_object(path)
    positive_int(config.get("r"), str(path), "r")
    alpha = config.get("lora_alpha")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise BenchmarkError(f"{path}: lora_alpha is {alpha!r} (expected a positive number)")
    # 16.0 is 16: a space's alpha is an integer where it can be (space.json stores integers)
    return {**config, "lora_alpha": int(alpha) if float(alpha).is_integer() else alpha}


def check_adapter(folder: str | os.PathLike, space: LoNASSpace, base_config: dict) -> None:
    """A peft adapter directory fits `space` and the base: rank and alpha are the space's r_max and
    alpha, its target_modules name modules the base has (`targeted_modules`), and adapter_model.safetensors
    is whole and holds LoRA matrices of rank r for every projection LoNAS adapts in every layer, of the
    base's sizes, and for every module it targets (headers only, no weights read)."""
    folder = Path(folder)
    config = read_adapter_config(folder)
    r, alpha = config["r"], config["lora_alpha"]
    if r != space.lora_rank or alpha != space.lora_alpha:
        raise BenchmarkError(f"{folder / ADAPTER_CONFIG}: adapter has r={r}, alpha={alpha}; the space "
                             f"{space.name!r} slices r={space.lora_rank}, alpha={space.lora_alpha}")
    targeted = targeted_modules(config, base_config, str(folder / ADAPTER_CONFIG))
    path = folder / "adapter_model.safetensors"
    if not path.is_file():
        if (folder / "adapter_model.bin").is_file():
            return  # a pickled adapter has no header to read without loading it
        raise BenchmarkError(f"{folder}: no adapter weights (adapter_model.safetensors)")
    shapes = projection_shapes(base_config)
    found: set[tuple[int, str, str]] = set()
    tensors = safetensors_shapes(path)
    for name, shape in tensors.items():
        match = _LAYER_TENSOR.search(name)
        if not match or match.group(3) is None:
            continue
        layer, module, part = int(match.group(1)), match.group(2), match.group(3)
        _check_layer(path, name, layer, base_config)
        if module in shapes:
            out, inp = shapes[module]
            expected = [r, inp] if part == "lora_A" else [out, r]
            if shape != expected:
                raise BenchmarkError(f"{path}: {name} has shape {shape}; r={r} ({ADAPTER_CONFIG}) and the base's "
                                     f"config.json give {expected}")
        found.add((layer, module, part))
    for layer in range(base_config["num_hidden_layers"]):
        for module in LORA_TARGETS:
            for part in ("lora_A", "lora_B"):
                if (layer, module, part) not in found:
                    raise BenchmarkError(f"{path}: no {part} of {module} in layer {layer} (LoNAS adapts "
                                         f"{', '.join(LORA_TARGETS)} in every layer)")
    _check_targets_have_weights(path, targeted, tensors)


def adaptable_modules(base_config: dict) -> list[str]:
    """The modules of the causal LM `base_config` describes that a LoRA adapter may target, by the names peft
    matches `target_modules` against: each layer's projections (`DECODERS`), the embedding, the output layer."""
    d = decoder_of(base_config.get("model_type", "llama"))
    return [f"{d.layers}.{i}.{d.module(role)}" for i in range(base_config["num_hidden_layers"])
            for role in _ROLES] + ["model.embed_tokens", "lm_head"]


def targeted_modules(config: dict, base_config: dict, where: str) -> list[str]:
    """The modules peft adapts when it loads an adapter of `config` (adapter_config.json) onto the base, as
    peft matches `target_modules` (a list of names or name suffixes, a regular expression, or "all-linear")
    and `layers_to_transform`. BenchmarkError naming `where` when an entry names no module of the base, or
    a module LoNAS adapts is not targeted: peft would raise, or ignore those weights, on every candidate."""
    targets, modules = config.get("target_modules"), adaptable_modules(base_config)
    model_type = base_config.get("model_type", "llama")
    projections = ", ".join(getattr(decoder_of(model_type), role) for role in _ROLES)
    if targets == "all-linear":  # peft: every linear layer but the output layer
        found = [m for m in modules if m not in ("model.embed_tokens", "lm_head")]
    elif isinstance(targets, str):
        try:
            found = [m for m in modules if re.fullmatch(targets, m)]
        except re.error as e:
            raise BenchmarkError(f"{where}: target_modules {targets!r} is not a regular expression ({e})") from None
        if not found:
            raise BenchmarkError(f"{where}: target_modules {targets!r} matches no module of a {model_type} model "
                                 f"(its layers' projections: {projections})")
    elif isinstance(targets, list) and targets and all(isinstance(t, str) for t in targets):
        lacking = [t for t in targets if not any(_is_suffix(t, m) for m in modules)]
        if lacking:
            raise BenchmarkError(f"{where}: target_modules names {', '.join(lacking)}, which a {model_type} model "
                                 f"does not have (its layers' projections: {projections})")
        found = [m for m in modules if any(_is_suffix(t, m) for t in targets)]
    else:
        raise BenchmarkError(f"{where}: target_modules is {targets!r} (expected a list of module names, a regular "
                             f"expression or 'all-linear')")
    untargeted = [t for t in LORA_TARGETS if not any(m.endswith(f".{t}") for m in found)]
    if untargeted:
        raise BenchmarkError(f"{where}: target_modules does not adapt {', '.join(untargeted)} (LoNAS adapts "
                             f"{', '.join(LORA_TARGETS)} in every layer)")
    layers = config.get("layers_to_transform")
    if isinstance(layers, int) and not isinstance(layers, bool):
        layers = [layers]
    if layers is not None and not (isinstance(layers, list) and all(type(i) is int for i in layers)):
        raise BenchmarkError(f"{where}: layers_to_transform is {layers!r} (expected null, a layer or a list of them)")
    return [m for m in found if _in_layers(m, layers)]


def _is_suffix(target: str, module: str) -> bool:
    """Whether peft's list entry `target` names `module` (the whole name or its last dotted parts)."""
    return module == target or module.endswith(f".{target}")


def _in_layers(module: str, layers: list[int] | None) -> bool:
    """Whether peft's `layers_to_transform` (None: every layer) keeps `module`."""
    found = re.search(r"\.layers\.(\d+)\.", f".{module}")
    return layers is None or found is None or int(found.group(1)) in layers


def _check_targets_have_weights(path: Path, targeted: list[str], tensors: dict[str, list[int]]) -> None:
    """BenchmarkError naming the first targeted module without LoRA weights in `path`: peft would give it new,
    random ones (with only a warning), and every score would be of another network."""
    with_weights = {name.split(".lora_")[0] for name in tensors if ".lora_" in name}
    for module in targeted:
        if f"base_model.model.{module}" not in with_weights:
            raise BenchmarkError(f"{path}: no LoRA weights for {module}, which {ADAPTER_CONFIG}'s target_modules "
                                 "lists (peft would start it from new random weights)")


def _check_layer(path: Path, name: str, layer: int, config: dict) -> None:
    if layer >= config["num_hidden_layers"]:
        raise BenchmarkError(f"{path}: {name} is in layer {layer}; config.json's num_hidden_layers is "
                             f"{config['num_hidden_layers']}")


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
        check_adapter(adapter, space, base.config.to_dict())  # before peft loads it: one line, not a traceback
        with quiet_loading():
            model = PeftModel.from_pretrained(base, str(adapter), is_trainable=False)
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
