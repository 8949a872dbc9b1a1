"""LoNAS: sub-networks of a LoRA-adapted LLaMA super-network, as a benchmark.

A LoNAS super-network is a frozen LLaMA-family base model (transformers' `LlamaForCausalLM`,
or a Mistral / Qwen2 / Qwen3 one: `DECODERS`)
with LoRA adapters (peft) on q, k, v, up, gate and down of every layer, trained so
that any sub-network works: per layer, the LoRA rank of q/k/v, the FFN width and the
LoRA rank of gate/up are elastic. A sub-network is activated by *slicing*: the first
rows/columns of each weight, no reordering, LoRA scaling kept at alpha / r_max.

The modules, one concept each:

- `space`: the search space as data (`LoNASSpace`, `Group`; `SPACE_PRESETS["llama-7b"]`
  is LoNAS's own space, `lonas_space` scales it to any model with the same ratios);
- `supernetwork`: loading the base and making the super-network (the one module that
  uses transformers and peft, imported inside its functions: peft alone takes seconds);
- `slicing`: the slicing rules (`sliced_tensors`), running or extracting a sub-network,
  counting its parameters, masking a full base to its FFN widths;
- `export`: a sub-network as a standard peft adapter directory;
- `text`: WikiText-2 in a model's vocabulary, held-out windows, perplexity;
- `benchmark`: `LoNASBenchmark` (and `search_space()`, its sub-networks as genomes);
- `search_space`: `LoNASSearchSpace`, those sub-networks as the search space of `lpzero nas`;
- `build`: `lpzero build lonas-mini` (its training loop is `lpzero.benchmarks.training`); imported on its own.

Importing this package registers "lonas-mini", "lonas:DIR" and the space "lonas" (none of its
modules imports transformers or peft at import time).
"""
from __future__ import annotations

from .. import BENCHMARKS, BUILDS, SPACES
from .benchmark import GROUND_TRUTH_FILE, LONAS_MINI_DIR, SPACE_FILE, LoNASBenchmark, SubnetworkGenomes
from .export import SUBNETWORK_FILE, export_subnetwork
from .slicing import (WeightFamily, count_subnetwork_params, extract_subnetwork, mask_ffn, module_ranks,
                      run_subnetwork, sliced_tensors)
from .space import (LONAS_ALPHA, LONAS_DROPOUT, LONAS_RANK, LORA_TARGETS, RANK_RATIOS, SPACE_PRESETS, WIDTH_RATIOS,
                    Choice, Group, LoNASSpace, choice_id, lonas_space)
from .supernetwork import (DECODERS, Decoder, decoder_layers, inner_model, load_base, lora_config, make_supernetwork,
                           new_llama)
from .text import VOCAB_FILE, Vocabulary, lonas_tokenizer, perplexity, token_stream, tokenized, window_nll, windows

BENCHMARKS.register("lonas-mini", f"{__name__}.benchmark:LoNASBenchmark",
                    description="LoNAS sub-networks of a tiny LLaMA super-network, held-out perplexity (built by "
                                "`lpzero build lonas-mini`)")
BENCHMARKS.register("lonas", f"{__name__}.benchmark:LoNASBenchmark", prefix=True,
                    description="a built LoNAS directory, or a local LLaMA checkpoint with --adapter DIR (lonas:DIR)")
BUILDS.register("lonas-mini", f"{__name__}.build:LONAS_MINI",
                description="a tiny LLaMA super-network's LoNAS sub-networks and their held-out perplexity")
SPACES.register("lonas", f"{__name__}.search_space:LoNASSearchSpace", prefix=True,
                description="LoNAS sub-networks of lonas-mini, or of a LoNAS directory / LLaMA checkpoint")

__all__ = [
    "Choice", "DECODERS", "LONAS_MINI_DIR", "Decoder", "GROUND_TRUTH_FILE", "Group", "LONAS_ALPHA", "LONAS_DROPOUT",
    "LONAS_RANK", "LORA_TARGETS", "LoNASBenchmark", "LoNASSpace", "RANK_RATIOS", "SPACE_FILE", "SPACE_PRESETS",
    "SUBNETWORK_FILE", "SubnetworkGenomes", "VOCAB_FILE", "Vocabulary", "WIDTH_RATIOS", "WeightFamily",
    "lonas_tokenizer", "choice_id", "count_subnetwork_params", "decoder_layers", "export_subnetwork",
    "extract_subnetwork", "inner_model", "load_base", "lonas_space", "lora_config", "make_supernetwork", "mask_ffn",
    "module_ranks", "new_llama", "perplexity", "run_subnetwork", "sliced_tensors", 
    "token_stream", "tokenized", "window_nll", "windows",
]
