"""LoNAS: sub-networks of a LoRA-adapted LLaMA super-network, as a benchmark.

A LoNAS super-network is a frozen LLaMA base model (transformers' `LlamaForCausalLM`)
with LoRA adapters (peft) on q, k, v, up, gate and down of every layer, trained so
that any sub-network works: per layer, the LoRA rank of q/k/v, the FFN width and the
LoRA rank of gate/up are elastic. A sub-network is activated by *slicing*: the first
rows/columns of each weight, no reordering, LoRA scaling kept at alpha / r_max.

The search space is data (`LoNASSpace`: groups, their choices, which modules each
slices); `SPACE_PRESETS["llama-7b"]` is LoNAS's own space, `lonas_space` scales it to
any model with the same ratios. One function, `sliced_tensors`, holds the slicing
rules; it serves both ways a sub-network is run:

- `run_subnetwork`: the super-network's modules called with sliced views of its
  tensors (`torch.func.functional_call`), so a training step's gradients reach the
  super-network's LoRA weights (super-network training, perplexity evaluation);
- `extract_subnetwork`: a physically sliced copy whose parameters are views of the
  super-network's storage (no copy), so weight proxies see the sub-network's own
  tensors and gradients, not masked full ones. Do not modify its parameters in place:
  they are the super-network's.

`LoNASBenchmark` scores the sub-networks of one super-network on their *inherited*
weights: `build_model(arch_id, seed)` ignores the seed. It reads a directory built by
`lpzero build lonas-mini` (see `benchmarks.lonas_build`) or a user's local checkpoint
(a `save_pretrained` LLaMA directory) with an optional local peft adapter directory,
both through transformers' and peft's own loaders.

transformers and peft are imported where they are used: the `lpzero` command imports
this module, and peft alone takes seconds to import.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import math
import os
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator, Literal, Mapping

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from lpzero.files import atomic_write, atomic_write_json

from .base import Architecture, Batch, Benchmark, BenchmarkError, Site, WeightSite, ZCSites, read_json
from .text import gpt2_tokenizer, text_lines

#: the modules LoNAS adapts with LoRA, in every decoder layer
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "up_proj", "gate_proj", "down_proj")
#: LoNAS's LoRA settings for LLaMA (r, alpha, dropout)
LONAS_RANK, LONAS_ALPHA, LONAS_DROPOUT = 32, 64, 0.1
#: FFN widths as fractions of the base width, and rank choices as fractions of r (LoNAS's ratios)
WIDTH_RATIOS = (1.0, 0.875, 0.75, 0.625, 0.5)
RANK_RATIOS = (1.0, 0.875)
#: the weights whose W and G are proxy inputs: "base" (the frozen matrices), "lora" (A and B), or "both"
WeightFamily = Literal["base", "lora", "both"]
#: file names of a built LoNAS directory
SPACE_FILE, GROUND_TRUTH_FILE, VOCAB_FILE = "space.json", "ground_truth.json", "lpzero_vocab.json"
#: the sub-network record `export_subnetwork` writes beside the adapter
SUBNETWORK_FILE = "lonas_subnetwork.json"

Choice = dict[str, int]


@dataclass(frozen=True)
class Group:
    """One elastic choice of a layer.

    kind "rank": the LoRA rank of `modules` (rows of lora_A, columns of lora_B).
    kind "width": the FFN width: rows of `modules` (base weight, bias, lora_B) and
    columns of `inputs` (base weight, lora_A). Module names are relative to a decoder
    layer, e.g. "mlp.gate_proj". `choices` start with the super-network's value.
    """

    name: str
    layer: int
    kind: Literal["rank", "width"]
    modules: tuple[str, ...]
    choices: tuple[int, ...]
    inputs: tuple[str, ...] = ()

    @property
    def family(self) -> str:
        """The group without its layer, e.g. "ffn_width" (for per-family summaries)."""
        return self.name.split(".", 1)[1]


@dataclass(frozen=True)
class LoNASSpace:
    """A LoNAS search space: per-layer groups of choices, and the LoRA settings they slice."""

    name: str
    groups: tuple[Group, ...]
    lora_rank: int
    lora_alpha: int
    num_layers: int
    intermediate_size: int

    def __post_init__(self) -> None:
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise BenchmarkError(f"space {self.name!r}: duplicate group names")
        for g in self.groups:
            if not g.choices or any(c < 1 for c in g.choices) or g.choices[0] != max(g.choices):
                raise BenchmarkError(f"space {self.name!r}: group {g.name} needs positive choices, largest first")
            limit = self.lora_rank if g.kind == "rank" else self.intermediate_size
            if g.choices[0] > limit:
                raise BenchmarkError(f"space {self.name!r}: group {g.name} choice {g.choices[0]} exceeds {limit}")

    @property
    def size(self) -> int:
        return math.prod(len(g.choices) for g in self.groups)

    def check(self, choice: Mapping[str, int]) -> Choice:
        """`choice` as a full, validated mapping group -> value (BenchmarkError names the problem)."""
        unknown = set(choice) - {g.name for g in self.groups}
        if unknown:
            raise BenchmarkError(f"space {self.name!r}: unknown group(s) {sorted(unknown)[:3]}")
        out = {}
        for g in self.groups:
            if g.name not in choice:
                raise BenchmarkError(f"space {self.name!r}: no value for group {g.name}")
            value = choice[g.name]
            if value not in g.choices:
                raise BenchmarkError(f"space {self.name!r}: {g.name}={value} is not one of {list(g.choices)}")
            out[g.name] = int(value)
        return out

    def pick(self, position: str) -> Choice:
        """"max", "min" or "heuristic" (LoNAS's: each group's middle choice) sub-network."""
        index = {"max": lambda n: 0, "min": lambda n: n - 1, "heuristic": lambda n: (n - 1) // 2}
        if position not in index:
            raise BenchmarkError(f"unknown named sub-network {position!r} (max, min, heuristic)")
        return {g.name: g.choices[index[position](len(g.choices))] for g in self.groups}

    def sample(self, rng: np.random.Generator) -> Choice:
        """A uniformly random sub-network."""
        return {g.name: int(g.choices[rng.integers(len(g.choices))]) for g in self.groups}

    def encode(self, choice: Mapping[str, int]) -> list[int]:
        """The sub-network as choice indices, in group order (a NAS genome)."""
        choice = self.check(choice)
        return [g.choices.index(choice[g.name]) for g in self.groups]

    def decode(self, genome: Iterable[int]) -> Choice:
        genome = list(genome)
        if len(genome) != len(self.groups):
            raise BenchmarkError(f"space {self.name!r}: a genome has {len(self.groups)} genes, got {len(genome)}")
        return {g.name: g.choices[i] for g, i in zip(self.groups, genome)}

    def to_json(self) -> dict:
        return {"name": self.name, "lora_rank": self.lora_rank, "lora_alpha": self.lora_alpha,
                "num_layers": self.num_layers, "intermediate_size": self.intermediate_size,
                "groups": [asdict(g) for g in self.groups]}

    @classmethod
    def from_json(cls, data: dict, where: str = "space") -> "LoNASSpace":
        try:
            groups = tuple(Group(g["name"], int(g["layer"]), g["kind"], tuple(g["modules"]),
                                 tuple(int(c) for c in g["choices"]), tuple(g.get("inputs", ())))
                           for g in data["groups"])
            return cls(data["name"], groups, int(data["lora_rank"]), int(data["lora_alpha"]),
                       int(data["num_layers"]), int(data["intermediate_size"]))
        except (KeyError, TypeError, ValueError) as e:
            raise BenchmarkError(f"{where}: malformed LoNAS space ({type(e).__name__}: {e})") from None


def lonas_space(num_layers: int, intermediate_size: int, lora_rank: int = LONAS_RANK,
                lora_alpha: int = LONAS_ALPHA, name: str | None = None) -> LoNASSpace:
    """LoNAS's space for a model of this depth and FFN width, with LoNAS's ratios.

    Per layer: the rank of q/k/v (one choice for the three), the FFN width, the rank of
    gate/up; down keeps rank r. `lonas_space(32, 11008)` is LoNAS's LLaMA-7B space.
    """
    ranks = tuple(dict.fromkeys(max(1, round(lora_rank * r)) for r in RANK_RATIOS))
    widths = tuple(dict.fromkeys(max(1, round(intermediate_size * r)) for r in WIDTH_RATIOS))
    groups = []
    for i in range(num_layers):
        groups += [
            Group(f"L{i}.qkv_rank", i, "rank", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), ranks),
            Group(f"L{i}.ffn_width", i, "width", ("mlp.gate_proj", "mlp.up_proj"), widths, ("mlp.down_proj",)),
            Group(f"L{i}.gate_up_rank", i, "rank", ("mlp.gate_proj", "mlp.up_proj"), ranks),
        ]
    return LoNASSpace(name or f"lonas-{num_layers}x{intermediate_size}", tuple(groups), lora_rank, lora_alpha,
                      num_layers, intermediate_size)


#: named spaces; "llama-7b" is LoNAS's configuration for LLaMA-7B (2^64 * 5^32 sub-networks)
SPACE_PRESETS = {"llama-7b": lonas_space(32, 11008, name="llama-7b")}


def choice_id(space: LoNASSpace, choice: Mapping[str, int]) -> str:
    """A short, stable name of a sub-network: "s" + its genome in base 36 per gene."""
    return "s" + "".join(np.base_repr(i, 36).lower() for i in space.encode(choice))


# --- the super-network ---------------------------------------------------------------------


def lora_config(space: LoNASSpace, dropout: float = LONAS_DROPOUT):
    """LoNAS's LoRA configuration for this space (rank r_max, alpha, the six target modules)."""
    from peft import LoraConfig

    return LoraConfig(r=space.lora_rank, lora_alpha=space.lora_alpha, lora_dropout=dropout,
                      target_modules=list(LORA_TARGETS), bias="none", task_type="CAUSAL_LM")


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


def _inner(model: nn.Module) -> nn.Module:
    """The LlamaForCausalLM inside a peft model (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layers of a (peft-wrapped) LlamaForCausalLM."""
    try:
        return _inner(model).model.layers
    except AttributeError:
        raise BenchmarkError(f"expected a LLaMA model (model.layers), got {type(model).__name__}") from None


def sliced_tensors(model: nn.Module, space: LoNASSpace, choice: Mapping[str, int]) -> dict[str, torch.Tensor]:
    """Parameter name -> sliced view of that parameter, for every parameter `choice` slices.

    The views share storage with (and, outside no_grad, are differentiable functions of)
    the super-network's parameters. This is the one place the slicing rules live.
    """
    choice = space.check(choice)
    layers = decoder_layers(model)
    prefix = _layers_prefix(model)
    cuts: dict[str, list] = {}

    def cut(name: str, dim: int, size: int) -> None:
        index = cuts.setdefault(name, [slice(None), slice(None)])
        index[dim] = slice(0, size)

    for g in space.groups:
        value = choice[g.name]
        base = f"{prefix}.{g.layer}."
        for module_name in g.modules:
            module = layers[g.layer].get_submodule(module_name)
            if g.kind == "rank":
                cut(base + module_name + ".lora_A.default.weight", 0, value)
                cut(base + module_name + ".lora_B.default.weight", 1, value)
            else:
                cut(base + module_name + ".base_layer.weight", 0, value)
                cut(base + module_name + ".lora_B.default.weight", 0, value)
                if getattr(module.base_layer, "bias", None) is not None:
                    cut(base + module_name + ".base_layer.bias", 0, value)
        for module_name in g.inputs:
            cut(base + module_name + ".base_layer.weight", 1, value)
            cut(base + module_name + ".lora_A.default.weight", 1, value)
    params = dict(model.named_parameters())
    out = {}
    for name, index in cuts.items():
        if name not in params:
            raise BenchmarkError(f"the super-network has no parameter {name} (is it a LoNAS LoRA model?)")
        p = params[name]
        out[name] = p[tuple(index[: p.dim()])]
    return out


def _layers_prefix(model: nn.Module) -> str:
    layers = decoder_layers(model)
    for name, module in model.named_modules():
        if module is layers:
            return name
    raise BenchmarkError("cannot find the decoder layers in the model")


def run_subnetwork(model: nn.Module, space: LoNASSpace, choice: Mapping[str, int], *args, **kwargs):
    """Call the super-network as the sub-network `choice` (sliced views, gradients reach the super-network)."""
    return torch.func.functional_call(model, sliced_tensors(model, space, choice), args, kwargs, strict=False)


def extract_subnetwork(model: nn.Module, space: LoNASSpace, choice: Mapping[str, int],
                       trainable: WeightFamily = "both") -> nn.Module:
    """The sub-network as its own model whose parameters are views of the super-network's storage.

    The decoder layers' parameters of the `trainable` family (base weights, LoRA, or both)
    require grad, so one backward pass gives each its own gradient; the embedding, the
    final norm and the LM head do not (at 7B their gradients are a gigabyte no proxy reads).
    Buffers (rotary frequencies) are copied.
    """
    sliced = {name: t.detach() for name, t in sliced_tensors(model, space, choice).items()}
    params = dict(model.named_parameters())
    in_layers = _layers_prefix(model) + "."
    # deepcopy with every parameter pre-placed in the memo: the module tree is copied,
    # the (possibly billions of) weights are not.
    memo: dict[int, object] = {}
    for name, p in params.items():
        grad = name.startswith(in_layers) and _in_family(name, trainable)
        memo[id(p)] = nn.Parameter(sliced.get(name, p.detach()), requires_grad=grad)
    sub = copy.deepcopy(model, memo)
    for name, module in sub.named_modules():
        if isinstance(module, nn.Linear):
            module.out_features, module.in_features = module.weight.shape
    return sub


def _output_wants_grad(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    return output if output.requires_grad or not torch.is_grad_enabled() else output.detach().requires_grad_()


def _in_family(name: str, family: WeightFamily) -> bool:
    is_lora = ".lora_" in name
    return family == "both" or (family == "lora") == is_lora


def count_subnetwork_params(model: nn.Module, space: LoNASSpace, choice: Mapping[str, int]) -> dict[str, int]:
    """Parameters of the sub-network: base (all non-LoRA), lora, nonembedding (decoder layers), total."""
    sliced = sliced_tensors(model, space, choice)
    prefix = _layers_prefix(model) + "."
    counts = {"base": 0, "lora": 0, "nonembedding": 0}
    for name, p in model.named_parameters():
        n = sliced[name].numel() if name in sliced else p.numel()
        counts["lora" if ".lora_" in name else "base"] += n
        if name.startswith(prefix):
            counts["nonembedding"] += n
    counts["total"] = counts["base"] + counts["lora"]
    return counts


def module_ranks(space: LoNASSpace, choice: Mapping[str, int]) -> dict[str, int]:
    """LoRA rank of every adapted module ("model.layers.{i}.{module}") in the sub-network `choice`."""
    choice = space.check(choice)
    ranks = {f"model.layers.{i}.{group}.{name}": space.lora_rank for i in range(space.num_layers)
             for group, name in (("self_attn", "q_proj"), ("self_attn", "k_proj"), ("self_attn", "v_proj"),
                                 ("mlp", "gate_proj"), ("mlp", "up_proj"), ("mlp", "down_proj"))}
    for g in space.groups:
        if g.kind == "rank":
            for module_name in g.modules:
                ranks[f"model.layers.{g.layer}.{module_name}"] = choice[g.name]
    return ranks


def export_subnetwork(model: nn.Module, space: LoNASSpace, choice: Mapping[str, int], out: str | os.PathLike) -> Path:
    """Write the sub-network `choice` as a standard peft adapter directory plus `lonas_subnetwork.json`.

    The adapter has each module's sliced rank (peft's `rank_pattern`, with `alpha_pattern`
    keeping LoNAS's scaling alpha / r_max). A LoRA adapter cannot shrink the base model,
    so the FFN widths are recorded in `lonas_subnetwork.json` (one value per group, in
    the order of the space's groups, as LoNAS's NNCF "width" configuration lists them)
    and the adapter's rows and columns beyond each width are zero: the base model with
    `mask_ffn` applied plus this adapter computes exactly the sub-network.
    """
    from peft import LoraConfig

    choice = space.check(choice)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ranks = module_ranks(space, choice)
    widths = {g.layer: choice[g.name] for g in space.groups if g.kind == "width"}
    tensors = {}
    layers = decoder_layers(model)
    for name, rank in ranks.items():
        layer = int(name.split(".")[2])
        module = layers[layer].get_submodule(name.split(".", 3)[3])
        a = module.lora_A["default"].weight.detach()[:rank].clone()
        b = module.lora_B["default"].weight.detach()[:, :rank].clone()
        width = widths.get(layer)
        if width is not None and name.endswith(("gate_proj", "up_proj")):
            b[width:] = 0
        if width is not None and name.endswith("down_proj"):
            a[:, width:] = 0
        tensors[f"base_model.model.{name}.lora_A.weight"] = a.contiguous()
        tensors[f"base_model.model.{name}.lora_B.weight"] = b.contiguous()
    rank_pattern = {k: v for k, v in ranks.items() if v != space.lora_rank}
    config = LoraConfig(r=space.lora_rank, lora_alpha=space.lora_alpha, target_modules=list(LORA_TARGETS),
                        lora_dropout=0.0, bias="none", task_type="CAUSAL_LM", rank_pattern=rank_pattern,
                        alpha_pattern={k: space.lora_alpha * v / space.lora_rank for k, v in rank_pattern.items()})
    config.save_pretrained(str(out))
    atomic_write(out / "adapter_model.safetensors", lambda tmp: save_file(tensors, str(tmp)))
    record = {"space": space.name, "choice": choice, "width": [choice[g.name] for g in space.groups],
              "groups": [g.name for g in space.groups], "ffn_widths": {str(k): v for k, v in widths.items()}}
    atomic_write_json(out / SUBNETWORK_FILE, record)
    return out


def mask_ffn(base: nn.Module, space: LoNASSpace, choice: Mapping[str, int]) -> nn.Module:
    """Zero the gate/up rows beyond each layer's FFN width in `base` (in place; returns it).

    act(0) * up = 0 for LLaMA's SiLU, so down's extra columns see zeros: the masked full-size
    model computes what the sliced one does, in a shape every LLaMA loader accepts.
    """
    choice = space.check(choice)
    layers = decoder_layers(base)
    with torch.no_grad():
        for g in space.groups:
            if g.kind == "width":
                for module_name in g.modules:
                    module = layers[g.layer].get_submodule(module_name)
                    module = getattr(module, "base_layer", module)
                    module.weight[choice[g.name]:] = 0
                    if module.bias is not None:
                        module.bias[choice[g.name]:] = 0
    return base


@torch.no_grad()
def window_nll(model: nn.Module, space: LoNASSpace, choice: Mapping[str, int], token_windows: torch.Tensor,
               device: str | torch.device = "cpu", chunk: int = 32) -> list[float]:
    """Summed next-token NLL of each window [n, T] under the sub-network `choice` (tokens 2..T predicted)."""
    out = []
    for part in token_windows.split(chunk):
        part = part.to(device)
        logits = run_subnetwork(model, space, choice, input_ids=part).logits[:, :-1].float()
        losses = nn.functional.cross_entropy(logits.transpose(1, 2), part[:, 1:], reduction="none")
        out += losses.sum(dim=1).tolist()
    return out


def perplexity(nll: list[float], seq_len: int) -> float:
    """Perplexity from the summed NLLs of windows of `seq_len` tokens (seq_len - 1 predictions each)."""
    return math.exp(sum(nll) / (len(nll) * (seq_len - 1)))


# --- tokens --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vocabulary:
    """A model's vocabulary as GPT-2 token ids: `kept[i]` is new id i; every other GPT-2 id maps to `unk`."""

    kept: tuple[int, ...]

    @property
    def unk(self) -> int:
        return len(self.kept)

    @property
    def size(self) -> int:
        return len(self.kept) + 1

    def lookup(self, source_size: int) -> torch.Tensor:
        table = torch.full((source_size,), self.unk, dtype=torch.long)
        table[torch.tensor(self.kept, dtype=torch.long)] = torch.arange(len(self.kept))
        return table

    def to_json(self) -> dict:
        return {"source": "gpt2", "unk": self.unk, "kept": list(self.kept)}

    @classmethod
    def read(cls, path: Path) -> "Vocabulary":
        data = read_json(path)
        if not isinstance(data, dict) or data.get("source") != "gpt2" or not isinstance(data.get("kept"), list):
            raise BenchmarkError(f"{path}: expected {{'source': 'gpt2', 'kept': [GPT-2 token ids]}}")
        return cls(tuple(int(i) for i in data["kept"]))


@functools.lru_cache(maxsize=8)
def token_stream(data_root: Path, split: str, vocabulary: Vocabulary | None) -> torch.Tensor:
    """WikiText-2 `split` as one stream of token ids (GPT-2's, mapped into `vocabulary` if given)."""
    text = " ".join(text_lines(data_root, split))
    tokenizer = gpt2_tokenizer(data_root)
    ids = torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)
    if vocabulary is None:
        return ids
    return vocabulary.lookup(len(tokenizer))[ids]


def windows(stream: torch.Tensor, seq_len: int, limit: int | None = None) -> torch.Tensor:
    """Consecutive non-overlapping windows [n, seq_len] of a token stream (at most `limit`)."""
    n = (len(stream) - 1) // seq_len
    if limit is not None:
        n = min(n, limit)
    if n < 1:
        raise BenchmarkError(f"{len(stream)} tokens: fewer than one window of {seq_len}")
    return stream[: n * seq_len].view(n, seq_len)


# --- the benchmark ---------------------------------------------------------------------------


_ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")


class LoNASBenchmark(Benchmark):
    """Sub-networks of one LoNAS super-network, scored on their inherited weights.

    `path` is a built LoNAS directory (`base/`, `adapter/`, `space.json`,
    `ground_truth.json`) or a local LLaMA checkpoint directory (config.json and
    weights; then `adapter` names an optional peft adapter directory, `space` a
    preset name or space.json, `ground_truth` an optional ground_truth.json).
    Without a ground truth the architectures are the max, heuristic and min
    sub-networks with ground truth NaN: `lpzero nas` can search, `rank` cannot.

    Which weights are proxy inputs (W, G) is `weights`: "both" (default; base and
    LoRA matrices, each paired with its own gradient), "base" or "lora".
    """

    raw_metric = "test_ppl"
    paper_batch_size = 16
    paper_seq_len = 128
    default_batch_size = 4
    default_seq_len = 128

    def __init__(self, path: str | os.PathLike, data_root: str | os.PathLike | None = None, name: str = "lonas",
                 adapter: str | os.PathLike | None = None, space: str | None = None,
                 ground_truth: str | os.PathLike | None = None, weights: WeightFamily = "both") -> None:
        self.name = name
        self.path = Path(path)
        self.data_root = Path(data_root) if data_root is not None else None
        if not self.path.is_dir():
            raise BenchmarkError(f"{self.path}: LoNAS directory not found")
        if weights not in ("base", "lora", "both"):
            raise BenchmarkError(f"weights={weights!r}: expected base, lora or both")
        self.weights = weights
        built = (self.path / "base").is_dir()
        self.base_path = self.path / "base" if built else self.path
        if adapter is None and built and (self.path / "adapter").is_dir():
            adapter = self.path / "adapter"
        self.adapter_path = None if adapter is None else Path(adapter)
        base_config = read_json(self.base_path / "config.json")
        missing = [k for k in ("num_hidden_layers", "intermediate_size", "vocab_size") if k not in base_config]
        if missing or base_config.get("model_type", "llama") != "llama":
            raise BenchmarkError(f"{self.base_path / 'config.json'}: not a LLaMA config "
                                 f"(model_type {base_config.get('model_type')!r}, missing {missing})")
        self.base_config = base_config
        self.space = self._read_space(space, base_config, built)
        gt_path = Path(ground_truth) if ground_truth is not None else self.path / GROUND_TRUTH_FILE
        if ground_truth is not None or gt_path.is_file():
            self._truth = self._read_ground_truth(gt_path)
        else:  # a checkpoint without ground truth: its named sub-networks, for nas and info
            self._truth = {p: (self.space.pick(p), math.nan) for p in ("max", "heuristic", "min")}
        self._supernet: nn.Module | None = None
        vocab_path = self.base_path / VOCAB_FILE
        self.vocabulary = Vocabulary.read(vocab_path) if vocab_path.is_file() else None
        self.default_seq_len = min(self.paper_seq_len, self.max_seq_len())

    # --- reading ---------------------------------------------------------------------------

    def _read_space(self, space: str | None, base_config: dict, built: bool) -> LoNASSpace:
        where = self.path / SPACE_FILE
        if space is None and built:
            return LoNASSpace.from_json(read_json(where), str(where))
        if space in SPACE_PRESETS:
            found = SPACE_PRESETS[space]
        elif space is not None:
            found = LoNASSpace.from_json(read_json(Path(space)), space)
        else:
            rank, alpha = LONAS_RANK, LONAS_ALPHA
            if self.adapter_path is not None:
                cfg = read_json(self.adapter_path / "adapter_config.json")
                rank, alpha = int(cfg.get("r", rank)), int(cfg.get("lora_alpha", alpha))
            found = lonas_space(int(base_config["num_hidden_layers"]), int(base_config["intermediate_size"]), rank,
                                alpha)
        if (found.num_layers, found.intermediate_size) != (base_config.get("num_hidden_layers"),
                                                           base_config.get("intermediate_size")):
            raise BenchmarkError(f"space {found.name!r} is for {found.num_layers} layers of FFN width "
                                 f"{found.intermediate_size}; {self.base_path} has {base_config.get('num_hidden_layers')}"
                                 f" of {base_config.get('intermediate_size')}")
        return found

    def _read_ground_truth(self, path: Path) -> dict[str, tuple[Choice, float]]:
        data = read_json(path)
        subs = data.get("subnetworks") if isinstance(data, dict) else None
        if not isinstance(subs, dict) or not subs:
            raise BenchmarkError(f"{path}: expected {{'subnetworks': {{id: {{'choice': ..., 'ppl': ...}}}}}}")
        truth = {}
        for arch_id, entry in subs.items():
            if not _ID_PATTERN.fullmatch(arch_id) or not isinstance(entry, dict):
                raise BenchmarkError(f"{path}: bad entry {arch_id!r}")
            ppl = entry.get("ppl")
            if not isinstance(ppl, (int, float)) or not math.isfinite(ppl) or ppl < 1:
                raise BenchmarkError(f"{path}: {arch_id} has ppl {ppl!r} (a perplexity is finite and >= 1)")
            try:
                choice = self.space.check(entry.get("choice", {}))
            except BenchmarkError as e:
                raise BenchmarkError(f"{path}: {arch_id}: {e}") from None
            truth[arch_id] = (choice, float(ppl))
        return truth

    def supernetwork(self) -> nn.Module:
        """The super-network (loaded once per benchmark object), on the CPU, in eval mode."""
        if self._supernet is None:
            model = make_supernetwork(load_base(self.base_path), self.space, self.adapter_path)
            self._supernet = model.eval()
        return self._supernet

    # --- Benchmark interface -----------------------------------------------------------------

    def max_seq_len(self) -> int:
        return int(self.base_config.get("max_position_embeddings", self.paper_seq_len))

    def ids(self) -> list[str]:
        return list(self._truth)

    def check_id(self, arch_id: str) -> None:
        if arch_id not in self._truth:
            raise BenchmarkError(f"{self.name}: unknown sub-network id {arch_id!r}")

    def choice(self, arch_id: str) -> Choice:
        self.check_id(arch_id)
        return dict(self._truth[arch_id][0])

    def architecture(self, arch_id: str) -> Architecture:
        """The sub-network's choices; ground truth minus held-out perplexity."""
        self.check_id(arch_id)
        choice, ppl = self._truth[arch_id]
        return Architecture(arch_id, dict(choice), -ppl, ppl)

    def build_model(self, arch_id: str, seed: int = 0, device: str | torch.device = "cpu") -> nn.Module:
        """The sub-network on inherited super-network weights (`seed` is not used: nothing is random)."""
        return self.build_subnetwork(self.choice(arch_id), device)

    def build_subnetwork(self, choice: Mapping[str, int], device: str | torch.device = "cpu") -> nn.Module:
        """Any sub-network of the space (views of the super-network's storage on the CPU)."""
        sub = extract_subnetwork(self.supernetwork(), self.space, choice, self.weights).eval()
        # J is the gradient at the embedding's output: make that output a leaf that wants a
        # gradient, rather than computing the whole embedding table's gradient
        _inner(sub).model.embed_tokens.register_forward_hook(_output_wants_grad)
        return sub if torch.device(device).type == "cpu" else sub.to(device)

    def count_params(self, arch_id: str) -> dict[str, int]:
        """base / lora / nonembedding / total parameters of the sub-network."""
        return count_subnetwork_params(self.supernetwork(), self.space, self.choice(arch_id))

    def make_batch(self, seed: int, batch_size: int | None = None, seq_len: int | None = None) -> Batch:
        """Random windows of WikiText-2 valid (the text the super-network was trained on)."""
        stream = self.stream("valid")
        seq_len = seq_len or self.default_seq_len
        if len(stream) <= seq_len:
            raise BenchmarkError(f"wikitext-2/valid.txt: {len(stream)} tokens, fewer than seq_len={seq_len}")
        gen = torch.Generator().manual_seed(seed)
        starts = torch.randint(0, len(stream) - seq_len, (batch_size or self.default_batch_size,), generator=gen)
        return Batch(torch.stack([stream[s: s + seq_len] for s in starts.tolist()]))

    def stream(self, split: str) -> torch.Tensor:
        """WikiText-2 `split` in this model's token ids."""
        if self.data_root is None:
            raise BenchmarkError(f"{self.name}: no data root for the text")
        vocab_size = int(self.base_config["vocab_size"])
        if self.vocabulary is None and vocab_size < len(gpt2_tokenizer(self.data_root)):
            raise BenchmarkError(f"{self.base_path}: vocabulary of {vocab_size} tokens and no {VOCAB_FILE} mapping "
                                 "GPT-2 token ids into it")
        if self.vocabulary is not None and self.vocabulary.size > vocab_size:
            raise BenchmarkError(f"{self.base_path / VOCAB_FILE}: {self.vocabulary.size} tokens, more than the "
                                 f"model's {vocab_size}")
        return token_stream(self.data_root, split, self.vocabulary)

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Mean next-token cross-entropy."""
        device = next(model.parameters()).device
        ids = batch.input_ids.to(device)
        return model(input_ids=ids, labels=ids).loss

    def zc_sites(self, model: nn.Module) -> ZCSites:
        """Where the proxy inputs live in a sub-network; B = batch, T = tokens, per layer i:

        - embedding: `embed_tokens`; J is the gradient w.r.t. its output [B, T, D].
        - activations (A): the input of `mlp.down_proj`, act(gate(x)) * up(x) [B, T, width_i].
        - heads (H): the input of `self_attn.o_proj`, the heads' outputs concatenated [B, T, D].
        - softmax (S): the attention probabilities [B, heads, T, T] (eager attention's second output).
        - weights (W, G): per layer, in module order, the base weight of q, k, v, o, gate, up,
          down (family "base") and lora_A, lora_B of the six adapted modules (family "lora");
          `self.weights` says which families are read. Each is paired with its own gradient.
        """
        layers = decoder_layers(model)
        inner = _inner(model)
        activations, heads, softmax, weights = [], [], [], []
        for i, layer in enumerate(layers):
            activations.append(Site(i, layer.mlp.down_proj, "input", f"L{i}.mlp.down_proj.input"))
            heads.append(Site(i, layer.self_attn.o_proj, "input", f"L{i}.self_attn.o_proj.input"))
            softmax.append(Site(i, layer.self_attn, "output", f"L{i}.self_attn.probs", output_index=1))
            for pname, p in layer.named_parameters():
                if pname.endswith("weight") and p.dim() == 2 and _in_family(pname, self.weights):
                    weights.append(WeightSite(i, f"L{i}.{pname.replace('.default', '')}", p))
        return ZCSites(inner.model.embed_tokens, activations, heads, softmax, weights)
