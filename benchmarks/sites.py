"""Where the six proxy inputs live in a transformers model, per `config.model_type`: one table.

A `SiteMap` names, relative to the model and to one of its layers, the modules whose inputs
or outputs are A, H and S, and which weights are W (G is their gradient); J is the gradient
w.r.t. the output of `model.get_input_embeddings()`. `SITE_MAPS` holds one per supported
family, as peft's target-module table does: a new family is one entry, not code.

| model_type | layers | S: output 1 of | H: input of | A: input of |
|---|---|---|---|---|
| gpt2 | transformer.h | attn | attn.c_proj | mlp.c_proj |
| gpt_neox | gpt_neox.layers | attention | attention.dense | mlp.dense_4h_to_h |
| opt | model.decoder.layers | self_attn | self_attn.out_proj | fc2 ([B*T, ffn]: OPT flattens tokens) |
| llama, mistral, qwen2, qwen3, phi3, gemma, gemma2 | model.layers | self_attn | self_attn.o_proj | mlp.down_proj |
| bert, roberta (encoders) | bert/roberta.encoder.layer | attention.self | attention.output.dense | output.dense |

S is the attention module's second output, [B, heads, T, T]: in transformers 5 every family's
attention returns (output, probabilities) under eager attention (sdpa and flash return None
there, so `hf_sites` insists on eager). A is the input of the FFN's down projection: act(gate x)
* up x for gated MLPs (phi3 splits its fused gate_up_proj before), the activation output for
plain ones. W is every 2-D weight inside a layer, named `L<i>.<parameter name>`, unless the
map lists the modules.

Other families register a `SiteMap` in `SITE_MAPS`, through the entry-point group
`lpzero.site_maps`, or are given as `module:ATTR` / `file.py:ATTR`.

This module imports transformers only inside the functions that build models.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from lpzero.errors import UnknownNameError
from lpzero.registry import Registry

from .attention import HOOKABLE_ATTENTION
from .base import Batch, BenchmarkError, Site, WeightSite, Where, ZCSites

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

#: attention implementations whose attention modules return the probabilities
EAGER_IMPLEMENTATIONS = ("eager", HOOKABLE_ATTENTION)
#: the share of positions an encoder's masked-LM objective predicts
MLM_FRACTION = 0.15
#: seed of the positions it predicts: fixed, so one batch always gives one loss
MLM_SEED = 0


class HFSiteError(BenchmarkError):
    """A transformers model whose proxy sites cannot be found (a missing module, non-eager attention)."""


@dataclass(frozen=True)
class SiteMap:
    """Where the six proxy inputs live in one transformers model family.

    `layers` is relative to the model (the task model, e.g. `LlamaForCausalLM`; for a bare
    base model the base-model prefix is dropped); the other names are relative to one layer.
    """

    #: the decoder/encoder layer list, e.g. "model.layers"
    layers: str
    #: the module whose forward returns the attention probabilities (S) at `attention_index`
    attention: str
    #: the attention's output projection: its input is H, the merged heads [B, T, heads * head_dim]
    heads: str
    #: the FFN's down projection: its input is A, [B, T, FFN width]
    ffn_down: str
    attention_index: int = 1
    #: "output" (an item of the module's output) or "input" (e.g. a dropout the probabilities enter)
    attention_where: Where = "output"
    #: modules whose `.weight` is W; empty: every 2-D weight parameter in the layer
    weights: tuple[str, ...] = ()
    #: a bidirectional encoder: the objective is masked-LM loss, not causal-LM loss
    encoder: bool = False


_GATED = SiteMap("model.layers", "self_attn", "self_attn.o_proj", "mlp.down_proj")

BUILTIN_SITE_MAPS: dict[str, SiteMap] = {
    "gpt2": SiteMap("transformer.h", "attn", "attn.c_proj", "mlp.c_proj"),
    "gpt_neox": SiteMap("gpt_neox.layers", "attention", "attention.dense", "mlp.dense_4h_to_h"),
    "opt": SiteMap("model.decoder.layers", "self_attn", "self_attn.out_proj", "fc2"),
    "llama": _GATED,
    "mistral": _GATED,
    "qwen2": _GATED,
    "qwen3": _GATED,
    "phi3": _GATED,  # fused qkv_proj / gate_up_proj: down_proj still sees up * act(gate)
    "gemma": _GATED,
    "gemma2": _GATED,  # its pre/post FFN norms sit outside mlp, its logit soft-capping before the softmax
    "bert": SiteMap("bert.encoder.layer", "attention.self", "attention.output.dense", "output.dense",
                    encoder=True),
    "roberta": SiteMap("roberta.encoder.layer", "attention.self", "attention.output.dense", "output.dense",
                       encoder=True),
}


class UnknownModelTypeError(HFSiteError, UnknownNameError):
    """A `config.model_type` with no `SiteMap`: the message names the supported ones and how to add one."""

    def __init__(self, what: str, name: object, known: list[str] | tuple[str, ...]) -> None:
        super().__init__(what, name, known)
        self.args = (f"{self.args[0]}; add one as SITE_MAPS.register({name!r}, SiteMap(...)) in "
                     "lpzero.benchmarks.sites, an 'lpzero.site_maps' entry point, "
                     "or give a SiteMap as module:ATTR / file.py:ATTR",)


def _is_site_map(obj: object) -> str | None:
    return None if isinstance(obj, SiteMap) else "is not a lpzero.benchmarks.sites.SiteMap"


#: SiteMap per transformers `model_type`
SITE_MAPS: Registry[SiteMap] = Registry("transformers model_type", group="lpzero.site_maps", error=HFSiteError,
                                        unknown=UnknownModelTypeError, check=_is_site_map,
                                        forms=("module:ATTR", "file.py:ATTR"))
for _name, _map in BUILTIN_SITE_MAPS.items():
    SITE_MAPS.register(_name, _map)


def site_map(model_type: str) -> SiteMap:
    """The SiteMap of `model_type` (or of a `module:ATTR` / `file.py:ATTR`); one line of error if none."""
    return SITE_MAPS.get(model_type)


def _resolve(model: nn.Module, sites: SiteMap | str | None) -> tuple[str, SiteMap]:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if isinstance(sites, SiteMap):
        return str(model_type), sites
    if sites is None and not model_type:
        raise HFSiteError(f"{type(model).__name__} has no config.model_type: not a transformers model")
    return str(model_type), site_map(sites if sites is not None else model_type)


def _unwrapped(model: nn.Module) -> nn.Module:
    # a peft model: its modules are the base model's, found under the base model's names
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _layer_list(model: nn.Module, smap: SiteMap, model_type: str) -> list[nn.Module]:
    candidates = [smap.layers]
    prefix = getattr(model, "base_model_prefix", "")
    if prefix and smap.layers.startswith(prefix + "."):
        candidates.append(smap.layers[len(prefix) + 1:])  # given the bare base model
    for path in candidates:
        try:
            layers = model.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(layers, (nn.ModuleList, nn.Sequential)):
            return list(layers)
    raise HFSiteError(f"model_type {model_type!r}: {type(model).__name__} has no layer list {smap.layers!r} "
                      "(SiteMap.layers)")


def _module(layer: nn.Module, name: str, field_name: str, index: int, model_type: str) -> nn.Module:
    try:
        return layer.get_submodule(name)
    except AttributeError:
        raise HFSiteError(f"model_type {model_type!r}: layer {index} has no module {name!r} "
                          f"(SiteMap.{field_name})") from None


def _check_eager(model: nn.Module, model_type: str) -> None:
    impl = getattr(model.config, "_attn_implementation", None)
    if impl not in EAGER_IMPLEMENTATIONS:
        raise HFSiteError(
            f"model_type {model_type!r} runs {impl!r} attention, which does not return the attention "
            "probabilities (S): load it with attn_implementation=\"eager\" (from_pretrained(..., "
            "attn_implementation=\"eager\") or model.set_attn_implementation(\"eager\"))")


def _layer_weights(layer: nn.Module, smap: SiteMap, i: int, model_type: str) -> list[WeightSite]:
    if smap.weights:
        found = []
        for name in smap.weights:
            weight = getattr(_module(layer, name, "weights", i, model_type), "weight", None)
            if not isinstance(weight, nn.Parameter):
                raise HFSiteError(f"model_type {model_type!r}: module {name!r} of layer {i} has no weight "
                                  "(SiteMap.weights)")
            found.append(WeightSite(i, f"L{i}.{name}.weight", weight))
        return found
    return [WeightSite(i, f"L{i}.{name}", p) for name, p in layer.named_parameters()
            if name.endswith("weight") and p.dim() == 2]


def hf_sites(model: PreTrainedModel, sites: SiteMap | str | None = None) -> ZCSites:
    """Where the six proxy inputs live in a transformers model (B = batch, T = tokens, per layer i):

    - embedding: `model.get_input_embeddings()`; J is the gradient w.r.t. its output [B, T, D].
    - activations (A): the input of the layer's `ffn_down` [B, T, FFN width].
    - heads (H): the input of the layer's `heads` [B, T, heads * head_dim].
    - softmax (S): item `attention_index` of the `attention` module's output [B, heads, T, T].
    - weights (W, G): every 2-D weight of the layer (or the map's `weights`), `L<i>.<name>`.

    `sites` is the SiteMap (or its registry name / `module:ATTR`); default: the one of
    `config.model_type`. The model must run eager attention; every named module must exist.
    """
    model_type, smap = _resolve(model, sites)
    inner = _unwrapped(model)
    _check_eager(inner, model_type)
    activations, heads, softmax, weights = [], [], [], []
    for i, layer in enumerate(_layer_list(inner, smap, model_type)):
        a, h, s = layer_sites(layer, i, smap, model_type)
        activations.append(a)
        heads.append(h)
        softmax.append(s)
        weights += _layer_weights(layer, smap, i, model_type)
    return ZCSites(inner.get_input_embeddings(), activations, heads, softmax, weights)


def layer_sites(layer: nn.Module, i: int, smap: SiteMap, model_type: str) -> tuple[Site, Site, Site]:
    """The A, H and S sites of layer `i` under `smap` (HFSiteError naming a module the layer lacks); a
    family with its own weights (LoNAS's base and LoRA families) takes these and lists its W itself."""
    down = _module(layer, smap.ffn_down, "ffn_down", i, model_type)
    o_proj = _module(layer, smap.heads, "heads", i, model_type)
    attention = _module(layer, smap.attention, "attention", i, model_type)
    return (Site(i, down, "input", f"L{i}.{smap.ffn_down}.input"),
            Site(i, o_proj, "input", f"L{i}.{smap.heads}.input"),
            Site(i, attention, smap.attention_where, f"L{i}.{smap.attention}.probs", output_index=smap.attention_index))


def mlm_labels(input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               fraction: float = MLM_FRACTION, seed: int = MLM_SEED) -> torch.Tensor:
    """Masked-LM labels: the token ids at a fixed, seeded `fraction` of each row's real positions, -100 elsewhere.

    The inputs are left as they are (no [MASK] substitution: not every family's config names its
    mask token); the same batch shape gives the same positions.
    """
    rows, tokens = input_ids.shape
    generator = torch.Generator().manual_seed(seed)
    order = torch.rand(rows, tokens, generator=generator).to(input_ids.device)
    if attention_mask is not None:
        order = order.masked_fill(attention_mask == 0, 2.0)  # padding sorts last: never picked
    count = max(1, round(fraction * tokens))
    picked = torch.zeros_like(input_ids, dtype=torch.bool)
    picked.scatter_(1, order.argsort(dim=1)[:, :count], True)
    if attention_mask is not None:
        picked &= attention_mask.bool()
    return input_ids.masked_fill(~picked, -100)


def causal_labels(input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Causal-LM labels: the token ids, -100 at padding (the model shifts them itself)."""
    if attention_mask is None:
        return input_ids
    return input_ids.masked_fill(attention_mask == 0, -100)


def hf_loss(model: PreTrainedModel, batch: Batch, sites: SiteMap | str | None = None) -> torch.Tensor:
    """The backward objective: causal-LM cross-entropy for decoders, masked-LM loss (`mlm_labels`) for
    encoders, as the SiteMap (`sites`, default: that of `config.model_type`) declares."""
    model_type, smap = _resolve(model, sites)
    ids, mask = batch.input_ids, batch.attention_mask
    if smap.encoder:
        out = model(input_ids=ids, attention_mask=mask, labels=mlm_labels(ids, mask))
    else:
        out = model(input_ids=ids, attention_mask=mask, labels=causal_labels(ids, mask), use_cache=False)
    loss = getattr(out, "loss", None)
    if loss is None:
        kind = "AutoModelForMaskedLM" if smap.encoder else "AutoModelForCausalLM"
        raise HFSiteError(f"model_type {model_type!r}: {type(model).__name__} computes no loss "
                          f"(load it with {kind})")
    return loss


#: tiny configs as transformers' tests make them: 2 layers, hidden 32, 4 heads, FFN 37, vocabulary 99
TINY_COMMON: dict[str, Any] = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                   intermediate_size=37, max_position_embeddings=64)
_GQA = dict(num_key_value_heads=2)
TINY_OVERRIDES: dict[str, dict[str, Any]] = {
    # GPT-2 has no intermediate_size: its FFN width is n_inner
    "gpt2": dict(intermediate_size=None, n_inner=37, bos_token_id=98, eos_token_id=98),
    "gpt_neox": {},
    "opt": dict(intermediate_size=None, ffn_dim=37, word_embed_proj_dim=32),
    "llama": _GQA,
    "mistral": _GQA,
    "qwen2": _GQA,
    "qwen3": dict(_GQA, head_dim=8),  # default head_dim 128 is independent of hidden_size
    "phi3": dict(_GQA, pad_token_id=0, bos_token_id=1, eos_token_id=2),  # default pad id 32000 > vocabulary
    "gemma": dict(_GQA, head_dim=8),
    "gemma2": dict(_GQA, head_dim=8, query_pre_attn_scalar=8),
    "bert": dict(type_vocab_size=2),
    "roberta": dict(type_vocab_size=1),
}


def transformers_error(e: Exception, limit: int = 300) -> str:
    """One line for an exception transformers raised (its messages span lines and nest validators)."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"


def config_of(model_type: str, keys: dict[str, Any]) -> PretrainedConfig:
    """The transformers config of `model_type` with `keys` (the rest its defaults), running eager attention
    (S needs it: `hf_sites`)."""
    from transformers import AutoConfig

    return AutoConfig.for_model(model_type, **{**keys, "attn_implementation": "eager"})


def _auto_class(sites: SiteMap):
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    return AutoModelForMaskedLM if sites.encoder else AutoModelForCausalLM


def build_model(config: PretrainedConfig, sites: SiteMap, seed: int, dtype: torch.dtype = torch.float32
                ) -> PreTrainedModel:
    """The model of `config` with its LM head (`AutoModelForMaskedLM` for an encoder, else
    `AutoModelForCausalLM`), random weights drawn from `seed` (the caller's random state untouched), in
    `dtype`, in eval mode (no dropout: a batch always gives the same loss)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _auto_class(sites).from_config(config, dtype=dtype, attn_implementation="eager")
    return model.eval()


def count_model_params(config: PretrainedConfig, sites: SiteMap) -> dict[str, int]:
    """total / embedding (the input embedding table) / nonembedding parameters of `config`'s model, built on
    the meta device (no memory; a config transformers cannot build raises here)."""
    with torch.device("meta"):
        model = _auto_class(sites).from_config(config, attn_implementation="eager")
    total = sum(p.numel() for p in model.parameters())
    embedding = sum(p.numel() for p in model.get_input_embeddings().parameters())
    return {"total": total, "embedding": embedding, "nonembedding": total - embedding}


def tiny_config(model_type: str) -> PretrainedConfig:
    """A tiny config of a built-in family (2 layers, hidden 32, 4 heads, 2 KV heads where the family
    has GQA, FFN 37, vocabulary 99, 64 positions, eager attention), for tests."""
    if model_type not in TINY_OVERRIDES:
        raise HFSiteError(f"no tiny config for model_type {model_type!r} (built in: {', '.join(TINY_OVERRIDES)})")
    kwargs = {**TINY_COMMON, **TINY_OVERRIDES[model_type]}
    return config_of(model_type, {k: v for k, v in kwargs.items() if v is not None})


def build_tiny(model_type: str, seed: int = 0) -> PreTrainedModel:
    """A randomly initialised tiny model of a built-in family (`tiny_config`) with its LM head, in eval mode."""
    return build_model(tiny_config(model_type), site_map(model_type), seed)
