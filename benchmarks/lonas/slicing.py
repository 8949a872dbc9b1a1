"""Slicing a sub-network out of the super-network, and what a sub-network is made of.

One function, `sliced_tensors`, holds the slicing rules (the first rows/columns of each
weight, no reordering, LoRA scaling kept at alpha / r_max); it serves both ways a
sub-network is run:

- `run_subnetwork`: the super-network's modules called with sliced views of its
  tensors (`torch.func.functional_call`), so a training step's gradients reach the
  super-network's LoRA weights (super-network training, perplexity evaluation);
- `extract_subnetwork`: a physically sliced copy whose parameters are views of the
  super-network's storage (no copy), so weight proxies see the sub-network's own
  tensors and gradients, not masked full ones. Do not modify its parameters in place:
  they are the super-network's.

`count_subnetwork_params` and `module_ranks` describe a sub-network without running it;
`mask_ffn` makes a full-size base compute a sub-network's FFN widths.
"""
from __future__ import annotations

import copy
from typing import Literal, Mapping

import torch
from torch import nn

from ..base import BenchmarkError
from .space import LoNASSpace
from .supernetwork import DECODERS, Decoder, decoder_layers, layers_prefix

#: the weights whose W and G are proxy inputs: "base" (the frozen matrices), "lora" (A and B), or "both"
WeightFamily = Literal["base", "lora", "both"]


def sliced_tensors(model: nn.Module, space: LoNASSpace, choice: Mapping[str, int]) -> dict[str, torch.Tensor]:
    """Parameter name -> sliced view of that parameter, for every parameter `choice` slices.

    The views share storage with (and, outside no_grad, are differentiable functions of)
    the super-network's parameters. This is the one place the slicing rules live.
    """
    choice = space.check(choice)
    layers = decoder_layers(model)
    prefix = layers_prefix(model)
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
    in_layers = layers_prefix(model) + "."
    # deepcopy with every parameter pre-placed in the memo: the module tree is copied,
    # the (possibly billions of) weights are not.
    memo: dict[int, object] = {}
    for name, p in params.items():
        grad = name.startswith(in_layers) and in_family(name, trainable)
        memo[id(p)] = nn.Parameter(sliced.get(name, p.detach()), requires_grad=grad)
    sub = copy.deepcopy(model, memo)
    for name, module in sub.named_modules():
        if isinstance(module, nn.Linear):
            module.out_features, module.in_features = module.weight.shape
    return sub


def in_family(name: str, family: WeightFamily) -> bool:
    """Whether the parameter `name` belongs to the weight family `family`."""
    is_lora = ".lora_" in name
    return family == "both" or (family == "lora") == is_lora


def count_subnetwork_params(model: nn.Module, space: LoNASSpace, choice: Mapping[str, int]) -> dict[str, int]:
    """Parameters of the sub-network: base (all non-LoRA), lora, nonembedding (decoder layers), total."""
    sliced = sliced_tensors(model, space, choice)
    prefix = layers_prefix(model) + "."
    counts = {"base": 0, "lora": 0, "nonembedding": 0}
    for name, p in model.named_parameters():
        n = sliced[name].numel() if name in sliced else p.numel()
        counts["lora" if ".lora_" in name else "base"] += n
        if name.startswith(prefix):
            counts["nonembedding"] += n
    counts["total"] = counts["base"] + counts["lora"]
    return counts


def module_ranks(space: LoNASSpace, choice: Mapping[str, int], decoder: Decoder = DECODERS["llama"]) -> dict[str, int]:
    """LoRA rank of every adapted module ("model.layers.{i}.{module}") in the sub-network `choice`."""
    choice = space.check(choice)
    ranks = {f"{decoder.layers}.{i}.{decoder.module(role)}": space.lora_rank for i in range(space.num_layers)
             for role in ("q", "k", "v", "gate", "up", "down")}
    for g in space.groups:
        if g.kind == "rank":
            for module_name in g.modules:
                ranks[f"{decoder.layers}.{g.layer}.{module_name}"] = choice[g.name]
    return ranks


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
