"""Size proxies: parameter counts."""
from __future__ import annotations

from torch import nn

from .context import ProxyContext, linear_layers
from .hand_designed import hand_designed


@hand_designed("num_params", note="a parameter count, not a function of the inputs' values.", pass_free=True)
def num_params(ctx: ProxyContext) -> float:
    """Number of parameters of the whole model (tied weights counted once)."""
    return float(sum(p.numel() for p in ctx.model().parameters()))


def _is_norm_layer(module: nn.Module) -> bool:
    name = type(module).__name__
    return name.endswith("LayerNorm") or name.endswith("RMSNorm")


@hand_designed("decoder_params", note="a parameter count, not a function of the inputs' values.", pass_free=True)
def decoder_params(ctx: ProxyContext) -> float:
    """Non-embedding ("decoder") parameters.

    `benchmark.count_params(arch)["nonembedding"]` when the benchmark reports it
    (LPZero's "nparams" is attention + FFN from params_summary.yaml; Archai's
    nonembedding adds all LayerNorms). Otherwise: all parameters of the modules
    owning the weight sites (weights and biases) plus every LayerNorm/RMSNorm
    outside the embedding site, which is Archai's count for GPT-2 layouts.
    """
    counts = ctx.benchmark.count_params(ctx.arch_id)
    if "nonembedding" in counts:
        return float(counts["nonembedding"])
    model = ctx.model()
    sites = ctx.benchmark.zc_sites(model)
    embedding_modules = {id(m) for m in sites.embedding.modules()}
    modules = [layer for layer, _ in linear_layers(model, sites.weights)] + [
        m for m in model.modules() if _is_norm_layer(m) and id(m) not in embedding_modules
    ]
    params = {id(p): p for m in modules for p in m.parameters(recurse=False)}
    return float(sum(p.numel() for p in params.values()))
