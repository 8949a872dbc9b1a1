"""Proxies on activations, attention maps and the embedding gradient of the shared pass."""
from __future__ import annotations

from typing import Iterable

import torch

from .context import ProxyContext, linear_layers, recipe_weights, shared_pass
from .hand_designed import hand_designed


@hand_designed("activation_distance",
                note='needs a token-pair kernel; recipe "lpzero" reads linear-layer outputs, not an input.')
def activation_distance(ctx: ProxyContext) -> float:
    """Activation distance: token-pair sign agreement of hidden features.

    For each recorded map, take the first sample's [tokens, features] slice,
    x = (map > 0), and add the sum of all entries of x x^T + (1 - x)(1 - x)^T:
    over all token pairs, the number of features on which the two tokens agree
    in sign. Computed as sum_c (n1_c^2 + n0_c^2), n1_c / n0_c = tokens with
    feature c positive / not, which is the same number.
    Recipe "lpzero": the outputs of every block linear layer. Recipe "tfnas":
    the feed-forward activation outputs (A), once per call. The FlexiBERT
    reference CSV counts each activation map 4 to 1,140 times over (its
    hooks piled up on an activation module shared across models, by a factor
    that grows along the evaluation order); its "Activation Distance Normalized"
    column (the mean per map) is free of that.
    """
    run = shared_pass(ctx)
    records = run.activations if ctx.recipe == "tfnas" else run.layer_outputs
    total = 0.0
    for rec in records:
        for out in rec:
            x = (out[0].reshape(out.shape[1], -1) > 0).double()
            positive = x.sum(0)
            total += float((positive.pow(2) + (x.shape[0] - positive).pow(2)).sum())
    return total


def _mean_max_over_dim1(tensors: Iterable[torch.Tensor]) -> float:
    return sum(float(t.double().max(dim=1).values.mean()) for t in tensors)


@hand_designed("attention_confidence",
                note="needs a max over tokens, and it reads linear-layer outputs, not one of the six inputs.")
def attention_confidence(ctx: ProxyContext) -> float:
    """Attention (head) confidence: sum over linear-layer outputs of mean(max over dim 1).

    For a [batch, tokens, features] output, dim 1 is the token axis.
    Recipe "lpzero": every block linear layer (LPZero's `head_confidence` is the
    same code). Recipe "tfnas" ("Head Confidence"): the token mixer's linear
    layers; the original hooks only its query/key/value/input/weight projections,
    so FlexiBERT's dynamic-convolution layers also count conv_kernel_layer and
    conv_out_layer here. The originals also ran a backward pass, which cannot
    change these values; it is skipped.
    """
    run, model = shared_pass(ctx), ctx.model()
    mixer = linear_layers(model, recipe_weights(ctx, model, run.sites, "mixer"))
    return _mean_max_over_dim1(run.outputs_of([layer for layer, _ in mixer]))


@hand_designed("softmax_confidence", note="over S, but a max over the head axis is not a primitive.")
def softmax_confidence(ctx: ProxyContext) -> float:
    """Softmax confidence: sum over attention maps S of mean(max over dim 1).

    For [batch, heads, query, key] maps, dim 1 is the head axis (as in
    training-free-nas, "Head Softmax Confidence"; LPZero's version never
    registers its hooks before the forward pass, so it has no usable definition).
    Blocks without a softmax site add nothing. Recipe "tfnas" reads what the
    original's hook saw where the benchmark names it (`ZCSites.tfnas_softmax`):
    in FlexiBERT also the softmax over head_dim of each Fourier/cosine head, which
    the original computes and never uses, and not the dynamic convolution's kernel
    softmax (a functional call no hook sees).
    """
    run = shared_pass(ctx)
    if ctx.recipe != "tfnas" or not run.sites.tfnas_softmax:
        return _mean_max_over_dim1(out for rec in run.softmax for out in rec)
    maps = []
    for site, rec in zip(run.sites.tfnas_softmax, run.tfnas_softmax):
        for out in rec:
            if site.softmax_heads:
                b, t, width = out.shape
                heads = out.double().reshape(b, t, site.softmax_heads, width // site.softmax_heads).transpose(1, 2)
                out = torch.softmax(heads, dim=-1)
            maps.append(out)
    return _mean_max_over_dim1(maps)


@hand_designed("jacobian_cosine", note="pairwise cosines between features are not primitives.")
def jacobian_cosine(ctx: ProxyContext) -> float:
    """Jacobian cosine: 1 - mean over feature pairs of |cos|^(1/20), halved.

    P[t, d] is the gradient of the position-embedding table, as in both originals
    (LPZero GPT-2: wpe; training-free-nas: ELECTRA's 128-wide position_embeddings),
    when the benchmark's sites name one. Otherwise P is J = dL/d(embedding site
    output) summed over the batch, which is the same matrix for positions 0..T-1
    whenever a position embedding is added to the site's output with nothing in
    between. Positions beyond T have zero gradient and change no cosine.
    With D features and c_ij the cosine between feature columns i and j of P:
    score = 1 - sum_{i != j} |c_ij|^(1/20) / (2 D (D - 1)).
    A feature with an all-zero column gets cosine 0 (the original gives NaN).
    """
    run = shared_pass(ctx)
    if run.position_grad is not None:
        per_position = run.position_grad  # [positions, features]
    else:
        per_position = sum(j.sum(0) for j in run.embedding_grads)  # [tokens, features]
    columns = per_position.double().T
    unit = columns / columns.norm(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    cosines = unit @ unit.T
    d = cosines.shape[0]
    off_diagonal = ~torch.eye(d, dtype=torch.bool, device=cosines.device)
    summed = cosines[off_diagonal].abs().pow(1.0 / 20).sum() / 2
    return float(1 - summed / (d * d - d))
