"""Hand-designed zero-cost proxies: the baselines LPZero is compared against.

Each baseline is a plain function `fn(ctx: ProxyContext) -> float`, registered
once in `BASELINES`; one module per family: `gradient` (one forward/backward of the
shared model), `synflow` (its own |p| model), `forward` (activations, attention
maps, the embedding gradient), `size` (parameter counts), `found` (the LPZero
paper's discovered proxies); `context` holds the shared context and pass. A proxy sees an architecture only through the `Benchmark`
interface: `build_model`, `loss` (the scalar of the one backward pass) and
`zc_sites` (where embedding, activations, heads, softmax maps and block weights
live). "Block linear layers" below means the modules that own the `zc_sites`
weights; on the LiteTransformerSearch GPT-2 these are exactly the Conv1D layers
the original code visited (c_attn, attn.c_proj, c_fc, mlp.c_proj).

| proxy                | what it measures                                          | original          |
|----------------------|-----------------------------------------------------------|-------------------|
| synaptic_diversity   | sum of nuclear norm(W) * nuclear norm(dL/dW)           [r] | L, T              |
| synaptic_saliency    | sum of abs(W * dL/dW)                                  [r] | L, T              |
| head_importance      | sum of abs(W * dL/dW) over weights with >= 128 rows    [r] | L (a), T          |
| activation_distance  | token-pair sign agreement of hidden features           [r] | L, T              |
| jacobian_cosine      | 1 - mean pairwise abs(cos)^(1/20), position-grad columns | L (b), T          |
| snip                 | sum of abs(dL/dmask) = sum of abs(W * dL/dW)              | L                 |
| grasp                | -sum of W * (Hessian @ gradient)                          | L                 |
| grad_norm            | sum over weights of the Frobenius norm of dL/dW           | L                 |
| fisher               | per channel 0.5 * mean (layer output * its gradient)^2    | L                 |
| synflow              | sum of abs(W * dR/dW) of a network with abs weights       | L                 |
| logsynflow           | sum of W * abs(log abs(dR/dW)), same network as synflow   | L (synflow.py)    |
| num_params           | number of parameters                                      | L (c), T          |
| decoder_params       | number of non-embedding parameters                        | L (d)             |
| attention_confidence | sum of mean(max over tokens) of linear-layer outputs   [r] | L, T (e)          |
| softmax_confidence   | sum of mean(max over heads) of attention maps          [r] | T (f)             |
| eznas                | sum of sigmoid(log abs det(sign(G) sign(G)^T))            | L                 |

L = pprp/LPZero `lpzero/predictor/measures/<proxy>.py`, whose GPT-2 code path
produced `reference/lts_gpt2_wt103/<proxy>_scores_seed_1111.yaml`; except
(a) attention_head_importance.py, (b) jacobian_score.py with the cosine of
jacobian_covariance.py, (c) parameters.py, (d) "nparams" in
`lpzero/runner/eval_rank_gpt2.py`, (e) attention_confidence.py (its
head_confidence is the same code).
T = aaronserianni/training-free-nas `BERT_metrics.ipynb`, which produced
`reference/flexibert/BERT_results_activation.csv`; (e) "Head Confidence",
(f) "Head Softmax Confidence".

[r] = which layers or maps are read depends on the context's recipe (below).

Conventions shared by all proxies (where they differ from an original, the
proxy's docstring says so):

- One mini-batch, `ctx.batch`; one objective, `benchmark.loss` (GPT-2: the LM
  loss, as LPZero's GPT-2 path; FlexiBERT: a random linear readout of the last
  hidden state, or under `hidden_size_compat` the originals' sum of it).
- `lpzero_gpt2`, `lpzero_flexibert`, `lpzero_llama` are the three proxies the
  LPZero paper reports as discovered (its Appendix B), computed from the six
  inputs of one forward/backward pass (`lpzero.benchmarks.inputs.extract_inputs`).
- Work several proxies read is done once per architecture (`ProxyContext.shared`):
  the model, one recorded forward/backward pass (`SharedPass`: weight gradients,
  linear-layer outputs and their gradients, activation and softmax maps, the
  embedding gradient), the synflow network, the six inputs. Each proxy's
  reported cost (`ProxyContext.timed`) is what it would take alone: its own work
  plus every shared pass it reads.
- Every forward pass runs under `torch.manual_seed(ctx.seed)` inside a forked RNG,
  so dropout masks (if the model is in training mode) are reproducible and the
  caller's random state is untouched. The model's mode is whatever
  `build_model` returns.
- Where the two originals read different parts of the network, the context's
  `recipe` decides (see `RECIPES`): "lpzero" (LPZero's GPT-2 path: every linear
  layer of the blocks; the default) or "tfnas" (training-free-nas's ELECTRA path:
  feed-forward or token-mixer subsets, activation-function outputs, the maps its
  softmax hook saw), the default
  for the benchmark named "flexibert", whose reference scores it produced. LPZero's
  own FlexiBERT runs (`runner/eval_rank_bert.py`) use the training-free-nas recipe.
- Scores keep the originals' signs. The paper reports correlation magnitudes;
  GraSP and Jacobian cosine correlate with the opposite sign to the others.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

from .context import RECIPES, ProxyContext, SharedPass, default_recipe, shared_pass
from .forward import activation_distance, attention_confidence, jacobian_cosine, softmax_confidence
from .found import (LPZERO_FLEXIBERT_TREE, LPZERO_LLAMA_TREE, lpzero_flexibert, lpzero_gpt2,
                    lpzero_llama, score_tree, six_inputs)
from .gradient import eznas, fisher, grad_norm, grasp, head_importance, snip, synaptic_diversity, synaptic_saliency
from .size import decoder_params, num_params
from .synflow import logsynflow, synflow


@dataclass(frozen=True)
class Baseline:
    """A named baseline proxy.

    `expressible` is the proxy as a per-layer formula over the six proxy inputs
    (A, J, G, H, W, S) and the primitive ops (the per-layer values summed over
    layers) when it lies in LPZero's search space, else None; `doc` ends with a
    "Search space:" line giving the reason or the caveats.
    """

    name: str
    fn: Callable[[ProxyContext], float]
    doc: str
    expressible: str | None
    #: computed without a forward or backward pass (a parameter count): `rank` needs no cache for it
    pass_free: bool = False

    def __call__(self, ctx: ProxyContext) -> float:
        return float(self.fn(ctx))


def _baseline(fn: Callable[[ProxyContext], float], expressible: str | None, note: str,
              pass_free: bool = False) -> Baseline:
    doc = inspect.getdoc(fn) or ""
    where = f"{expressible}; {note}" if expressible else f"not expressible: {note}"
    return Baseline(fn.__name__, fn, f"{doc}\n\nSearch space: {where}", expressible, pass_free)


BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in (
        _baseline(synaptic_diversity, None, "the nuclear norm is not a primitive."),
        _baseline(synaptic_saliency, "layer_sum__Lw(l1__Tw(mul__Tw(W, G)))", 'recipe "lpzero" only (all block weights).'),
        _baseline(head_importance, None, "no primitive selects layers by their number of rows."),
        _baseline(
            activation_distance,
            None,
            'needs a token-pair kernel; recipe "lpzero" reads linear-layer outputs, not an input.',
        ),
        _baseline(jacobian_cosine, None, "pairwise cosines between features are not primitives."),
        _baseline(snip, "layer_sum__Lw(l1__Tw(mul__Tw(W, G)))", "all block weights, whatever the recipe."),
        _baseline(grasp, None, "needs a Hessian-gradient product."),
        _baseline(grad_norm, "layer_sum__Lw(frobenius__Tw(G))", "exactly (the norm is taken per weight matrix)."),
        _baseline(fisher, None, "needs linear-layer outputs and their gradients."),
        _baseline(synflow, None, "needs a second network with absolute-valued weights."),
        _baseline(logsynflow, None, "needs a second network with absolute-valued weights."),
        _baseline(num_params, None, "a parameter count, not a function of the inputs' values.", pass_free=True),
        _baseline(decoder_params, None, "a parameter count, not a function of the inputs' values.", pass_free=True),
        _baseline(
            attention_confidence,
            None,
            "needs a max over tokens, and it reads linear-layer outputs, not one of the six inputs.",
        ),
        _baseline(softmax_confidence, None, "over S, but a max over the head axis is not a primitive."),
        _baseline(eznas, None, "sign and log-determinant are not primitives."),
        _baseline(lpzero_gpt2, None, "its z-score normalisation is not one of the 20 primitives."),
        _baseline(lpzero_flexibert, LPZERO_FLEXIBERT_TREE, "exactly, as a typed tree."),
        _baseline(lpzero_llama, LPZERO_LLAMA_TREE, "exactly, as a typed tree."),
    )
}


__all__ = ["BASELINES", "Baseline", "LPZERO_FLEXIBERT_TREE", "LPZERO_LLAMA_TREE", "ProxyContext", "RECIPES",
           "SharedPass", "default_recipe", "score_tree", "shared_pass", "six_inputs"]
