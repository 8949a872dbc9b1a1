"""Gradient-based proxies: one forward and one backward pass of the shared model.

Those whose value is a sum over block weights of a term of (W, dL/dW) alone are declared
as such (`@hand_designed(per_weight=PerWeight(...))`, the function being the term): they are
read from the shared pass, or from one streamed pass when the model is large
(`lpzero.proxies.context.PerWeight`). GraSP and Fisher read more than (W, dL/dW).
"""
from __future__ import annotations

import torch

from .context import ProxyContext, as_matrix, clear_grads, forward_loss, shared_pass
from .per_weight import PerWeight
from .hand_designed import hand_designed


def _abs_weight_times_grad(weight: torch.Tensor, grad: torch.Tensor) -> float:
    """sum |W * dL/dW| of one weight, in float64."""
    return float((weight.double() * grad.double()).abs().sum())


@hand_designed("snip",
                expressible="layer_sum__Lw(l1__Tw(mul__Tw(W, G)))",
                note="all block weights, whatever the recipe.",
                per_weight=PerWeight())
def snip(weight: torch.Tensor, grad: torch.Tensor) -> float:
    """SNIP: sum over block weights of |W * dL/dW|.

    The original multiplies each weight by a mask of ones and sums |dL/dmask|,
    which is exactly |W * dL/dW|; this computes it directly.
    """
    return _abs_weight_times_grad(weight, grad)


@hand_designed("synaptic_saliency",
                expressible="layer_sum__Lw(l1__Tw(mul__Tw(W, G)))",
                note='recipe "lpzero" only (all block weights).',
                per_weight=PerWeight(part="ffn"))
def synaptic_saliency(weight: torch.Tensor, grad: torch.Tensor) -> float:
    """Synaptic saliency: sum of |W * dL/dW| over block weights.

    Recipe "lpzero": all block weights (equal to `snip` on the same model).
    Recipe "tfnas": the feed-forward weights only (ElectraLayer.intermediate
    and .output in the original).
    """
    return _abs_weight_times_grad(weight, grad)


#: the originals only count weights whose first dimension has at least this many rows
HEAD_IMPORTANCE_MIN_ROWS = 128


def _has_min_rows(weight: torch.Tensor) -> bool:
    return weight.shape[0] >= HEAD_IMPORTANCE_MIN_ROWS


@hand_designed("head_importance", note="no primitive selects layers by their number of rows.",
                per_weight=PerWeight(part="mixer", reads=_has_min_rows))
def head_importance(weight: torch.Tensor, grad: torch.Tensor) -> float:
    """Attention head importance: sum of |W * dL/dW| over weights with >= 128 rows.

    The row filter is both originals' `weight.shape[0] >= 128` on the stored
    weight: for GPT-2's Conv1D ([in, out]) it drops every layer whose input
    width is below 128 (all but mlp.c_proj when d_model = 64); for nn.Linear
    ([out, in]) it tests the output width.
    Recipe "lpzero": all block weights. Recipe "tfnas": the token-mixing
    operation's weights (ElectraLayer.operation.operation in the original).
    """
    return _abs_weight_times_grad(weight, grad)


@hand_designed("grad_norm",
                expressible="layer_sum__Lw(frobenius__Tw(G))",
                note="exactly (the norm is taken per weight matrix).",
                per_weight=PerWeight())
def grad_norm(weight: torch.Tensor, grad: torch.Tensor) -> float:
    """GradNorm: sum over block weights of the Frobenius norm of dL/dW."""
    return float(grad.double().norm())


@hand_designed("synaptic_diversity", note="the nuclear norm is not a primitive.",
                per_weight=PerWeight(part="non_ffn"))
def synaptic_diversity(weight: torch.Tensor, grad: torch.Tensor) -> float:
    """Synaptic diversity: sum of ||W||_nuc * ||dL/dW||_nuc over block weights.

    Recipe "lpzero": all block weights. Recipe "tfnas": all but the
    feed-forward weights (ElectraLayer.operation in the original: the token
    mixer and its output projection).
    """
    return float(_nuclear_norm(weight) * _nuclear_norm(grad))


def _nuclear_norm(t: torch.Tensor) -> torch.Tensor:
    """Sum of singular values of `t` as a matrix, in float64.

    From the eigenvalues of the smaller Gram matrix (sigma_i = sqrt(lambda_i)):
    several times faster than an SVD of a wide matrix, and equal to
    `matrix_norm(t, "nuc")` to about 1e-9 relative (tested).
    """
    m = as_matrix(t).double()
    gram = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
    return torch.linalg.eigvalsh(gram).clamp_min(0).sqrt().sum()


def _not_taller_than_wide(weight: torch.Tensor) -> bool:
    # rank <= columns < rows: det(sign(G) sign(G)^T) is exactly 0 and sigmoid(log 0) adds 0
    rows, columns = as_matrix(weight).shape
    return rows <= columns


@hand_designed("eznas", note="sign and log-determinant are not primitives.",
                per_weight=PerWeight(reads=_not_taller_than_wide, skip_ungraded=True))
def eznas(weight: torch.Tensor, grad: torch.Tensor) -> float:
    """EZNAS: sum over block weights of sigmoid(log|det(sign(G) sign(G)^T)|).

    G is dL/dW with rows as stored (GPT-2 Conv1D: input features). sign(G)
    sign(G)^T is an integer matrix, so its determinant is 0 or at least 1: a
    layer adds 0 (singular, e.g. more rows than columns, which are skipped) or
    sigmoid(log|det|), in practice 1, and the score is close to a count of layers.
    As in the original, a layer without a gradient adds nothing. Computed in
    float64; the original's float32 turns some exactly singular matrices (on
    LTS GPT-2 often attn.c_proj's) into rounding noise that counts up to 1, so
    its scores run a few units higher (ours still rank 24 LTS architectures
    like the reference scores, Spearman 0.99). The original's final Frobenius norm of a scalar is its
    absolute value, a no-op here.
    """
    signs = torch.sign(as_matrix(grad)).double()
    _, logabsdet = torch.linalg.slogdet(signs @ signs.T)
    return float(torch.sigmoid(logabsdet))


@hand_designed("grasp", note="needs a Hessian-gradient product.")
def grasp(ctx: ProxyContext) -> float:
    """GraSP: -sum over block weights of W * (H g), g = dL/dW, H = d2L/dW2.

    Needs a second-order backward pass (about 3x the cost of one backward).
    The original runs two forward passes (one for g, one for the graph of the
    Hessian-vector product); this uses one forward pass for both, which is the
    same computation when the forward pass is deterministic (it is: fixed seed).
    Higher scores mean worse architectures in the paper's results.
    """
    model = ctx.model()
    sites = ctx.benchmark.zc_sites(model)
    weights = [s.param for s in sites.weights]
    clear_grads(model)
    grads = torch.autograd.grad(forward_loss(ctx, model), weights, create_graph=True, allow_unused=True)
    used = [(w, g) for w, g in zip(weights, grads) if g is not None]
    # z = g_const . g(W); dz/dW = H g_const.
    z = sum((g.detach() * g).sum() for _, g in used)
    hessian_grads = torch.autograd.grad(z, [w for w, _ in used], allow_unused=True)
    return -sum(
        float((w.detach().double() * hg.double()).sum())
        for (w, _), hg in zip(used, hessian_grads)
        if hg is not None
    )


@hand_designed("fisher", note="needs linear-layer outputs and their gradients.")
def fisher(ctx: ProxyContext) -> float:
    """Fisher: per output channel k of each linear layer, 0.5 * mean_n (a_nk * dL/da_nk)^2.

    a is the layer's output with all leading axes flattened into n (tokens of all
    samples). As in the original, each channel's value is broadcast over a row
    of the stored weight (`weight.shape[1:]`) before summing, so a layer adds
    sum_k value_k * prod(weight.shape[1:]); for Conv1D ([in, out]) that factor is
    the output width.
    """
    run = shared_pass(ctx)
    total = 0.0
    for (_, weight), outs, grads in zip(run.layers, run.layer_outputs, run.layer_output_grads):
        per_channel = 0.0
        for out, g in zip(outs, grads):
            if g is None:
                continue
            a = out.reshape(-1, out.shape[-1]).double()
            g = g.reshape(-1, out.shape[-1]).double()
            per_channel = per_channel + (a * g).pow(2).mean(0).mul(0.5)
        total += float(torch.as_tensor(per_channel).sum()) * (weight.numel() // weight.shape[0])
    return total
