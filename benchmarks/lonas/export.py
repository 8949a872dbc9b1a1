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
from .supernetwork import decoder_layers, inner_model, lora_config, model_decoder

#: the sub-network record `export_subnetwork` writes beside the adapter
SUBNETWORK_FILE = "lonas_subnetwork.json"


def export_subnetwork(model: nn.Module, space: LoNASSpace, choice: Mapping[str, int], out: str | os.PathLike,
                      base: str | os.PathLike | None = None) -> Path:
    """Write the sub-network `choice` as a standard peft adapter directory plus `lonas_subnetwork.json`.

    The adapter's `base_model_name_or_path` is `base` (the base checkpoint's directory; default:
    the path the base model was loaded from), as an absolute path where it is a directory.

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
    config = lora_config(space, dropout=0.0, rank_pattern=rank_pattern)
    config.base_model_name_or_path = _base_path(model, base)
    config.save_pretrained(str(out))
    atomic_write(out / "adapter_model.safetensors", lambda tmp: save_file(tensors, str(tmp)))
    record = {"space": space.name, "choice": choice, "width": [choice[g.name] for g in space.groups],
              "groups": [g.name for g in space.groups], "ffn_widths": {str(k): v for k, v in widths.items()}}
    atomic_write_json(out / SUBNETWORK_FILE, record)
    return out


def _base_path(model: nn.Module, base: str | os.PathLike | None) -> str | None:
    """Where the adapter's base model is: `base`, else the path `model`'s base was loaded from (None if unknown);
    a directory as an absolute path, so the adapter finds it from any working folder."""
    base = base or getattr(inner_model(model).config, "_name_or_path", "") or None
    if base is None:
        return None
    return str(Path(base).resolve()) if Path(base).is_dir() else str(base)
