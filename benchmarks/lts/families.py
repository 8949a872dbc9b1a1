"""The model families of LiteTransformerSearch results directories, and how a directory's is recognised.

Archai's LTS wrote the same directory layout and `params_summary.yaml` keys for two families:
GPT-2 flex (`gpt2_flex`: byte-level BPE, learned positions) and its memory Transformer-XL
(`transxl`: relative positions, a word-level vocabulary). An `LTSFamily` is what the benchmark and
the search space need of one: reading a config, building and counting a model, where the six proxy
inputs live, and which mini-batches it reads. `family_of` tells them apart from what a training
run recorded in its `model_config.yaml` (`transxl.is_transxl_config`); a directory's family is its
first architecture's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from ..base import ZCSites
from .gpt2_flex import FlexConfig, GPT2Flex, build_gpt2_flex, count_gpt2_flex_params, gpt2_flex_sites
from .transxl import TransXL, TransXLConfig, build_transxl, count_transxl_params, is_transxl_config, transxl_sites


@dataclass(frozen=True)
class LTSFamily:
    """One model family of LTS results directories."""

    #: the family's name in messages and `lpzero info`
    name: str
    #: a raw `model_config.yaml` -> its validated config (`ConfigError` naming the key)
    parse: Callable[[dict], Any]
    #: (config, seed, device) -> the model with random weights drawn from seed, in eval mode
    build: Callable[..., nn.Module]
    #: config -> parameter counts under params_summary.yaml's keys, counted on the meta device
    count: Callable[[Any], dict[str, int]]
    #: model -> where the six proxy inputs live
    sites: Callable[[nn.Module], ZCSites]
    #: the class of its models
    model: type
    #: mini-batches of words (WikiText-2's word vocabulary) instead of GPT-2 BPE tokens
    word_level: bool


GPT2_FLEX = LTSFamily("GPT-2 flex", FlexConfig.from_dict, build_gpt2_flex, count_gpt2_flex_params, gpt2_flex_sites,
                      GPT2Flex, word_level=False)
TRANSFORMER_XL = LTSFamily("Transformer-XL", TransXLConfig.from_dict, build_transxl, count_transxl_params,
                           transxl_sites, TransXL, word_level=True)


def family_of(raw: dict) -> LTSFamily:
    """The family a raw `model_config.yaml` belongs to (see the module docstring)."""
    return TRANSFORMER_XL if is_transxl_config(raw) else GPT2_FLEX


__all__ = ["GPT2_FLEX", "LTSFamily", "TRANSFORMER_XL", "family_of"]
