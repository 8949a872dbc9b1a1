"""Writing a sub-network as a standard peft adapter directory (what `lpzero nas` hands back)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from safetensors.torch import save_file
from torch import nn

from lpzero.files import atomic_write, atomic_write_json

from .slicing import module_ranks
from .space import LoNASSpace
from .supernetwork import decoder_layers, lora_config, model_decoder

#: the sub-network record `export_subnetwork` writes beside the adapter
SUBNETWORK_FILE = "lonas_subnetwork.json"


def export_subnetwork(model: nn.Module, space: LoNASSpace, choice: Mapping[str, int], out: str | os.PathLike) -> Path:
    """Write the sub-network `choice` as a standard peft adapter directory plus `lonas_subnetwork.json`.

    The adapter has each module's sliced rank (peft's `rank_pattern`, with `alpha_pattern`
    keeping LoNAS's scaling alpha / r_max). A LoRA adapter cannot shrink the base model,
    so the FFN widths are recorded in `lonas_subnetwork.json` (one value per group, in
    the order of the space's groups, as LoNAS's NNCF "width" configuration lists them)
    and the adapter's rows and columns beyond each width are zero: the base model with
    `mask_ffn` applied plus this adapter computes exactly the sub-network.
    """
    choice = space.check(choice)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    decoder = model_decoder(model)
    ranks = module_ranks(space, choice, decoder)
    widths = {g.layer: choice[g.name] for g in space.groups if g.kind == "width"}
    tensors = {}
    layers = decoder_layers(model)
    depth = decoder.layers.count(".") + 1  # "model.layers.{i}.{module}": i is the part after the layers' path
    for name, rank in ranks.items():
        layer = int(name.split(".")[depth])
        module = layers[layer].get_submodule(name.split(".", depth + 1)[depth + 1])
        a = module.lora_A["default"].weight.detach()[:rank].clone()
        b = module.lora_B["default"].weight.detach()[:, :rank].clone()
        width = widths.get(layer)
        if width is not None and name.endswith((decoder.gate, decoder.up)):
            b[width:] = 0
        if width is not None and name.endswith(decoder.down):
            a[:, width:] = 0
        tensors[f"base_model.model.{name}.lora_A.weight"] = a.contiguous()
        tensors[f"base_model.model.{name}.lora_B.weight"] = b.contiguous()
    rank_pattern = {k: v for k, v in ranks.items() if v != space.lora_rank}
    lora_config(space, dropout=0.0, rank_pattern=rank_pattern).save_pretrained(str(out))
    atomic_write(out / "adapter_model.safetensors", lambda tmp: save_file(tensors, str(tmp)))
    record = {"space": space.name, "choice": choice, "width": [choice[g.name] for g in space.groups],
              "groups": [g.name for g in space.groups], "ffn_widths": {str(k): v for k, v in widths.items()}}
    atomic_write_json(out / SUBNETWORK_FILE, record)
    return out
