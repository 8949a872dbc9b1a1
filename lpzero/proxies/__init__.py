"""Zero-cost proxies: the hand-designed baselines LPZero is compared against, and scoring any proxy.

Every proxy is a `Proxy` (`base`): a name, an orientation and `score(ctx)` on a
`ProxyContext` (`context`: one architecture on one mini-batch, the work its proxies
share, the one recorded forward/backward pass). `score_proxies` (`scoring`) scores a
list of proxies on one architecture; cache, rank and nas all call it.

Each hand-designed proxy is a plain function `fn(ctx: ProxyContext) -> float`,
registered where it is defined with `@hand_designed` into `HAND_DESIGNED`
(`hand_designed`); one module per family:
`gradient` (one forward/backward of the shared model), `synflow` (its own |p| model),
`forward` (activations, attention maps, the embedding gradient), `size` (parameter
counts), `paper` (the LPZero paper's discovered proxies). `inputs` extracts the six
proxy inputs of a context and scores a proxy tree on them. A proxy sees an
architecture only through the `Benchmark` interface: `build_model`, `loss` (the
scalar of the one backward pass) and
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

# the family modules register their proxies (`@hand_designed`) when imported here
from . import forward, gradient, paper, size, synflow  # noqa: F401
from .base import Proxy
from .context import RECIPES, ProxyContext, SharedPass, default_recipe, shared_pass
from .found_proxy import FoundProxy
from .hand_designed import HAND_DESIGNED, TABLE_ORDER, HandDesigned, ProxyRegistry, hand_designed
from .inputs import SIX_INPUTS, declare_inputs, proxy_inputs, score_tree, six_inputs
from .paper import LPZERO_FLEXIBERT_TREE, LPZERO_LLAMA_TREE
from .scoring import ProxyResult, score_proxies


__all__ = ["FoundProxy", "HAND_DESIGNED", "HandDesigned", "LPZERO_FLEXIBERT_TREE", "LPZERO_LLAMA_TREE",
           "Proxy", "ProxyContext", "ProxyRegistry", "ProxyResult", "RECIPES", "SIX_INPUTS", "SharedPass",
           "TABLE_ORDER", "declare_inputs", "default_recipe", "hand_designed", "proxy_inputs", "score_proxies",
           "score_tree", "shared_pass", "six_inputs"]
