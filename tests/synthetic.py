"""Synthetic cached inputs for search-layer tests: no model, no data files."""
from __future__ import annotations

import torch

from lpzero.primitives import INPUT_SYMBOLS, Weighted

#: layers per input family of the fake architectures (J has one tensor, as in real models)
LAYERS = {"A": 3, "J": 1, "G": 4, "H": 3, "W": 4, "S": 2}


def synthetic_inputs(n_arch: int = 20, samples: int = 64, seed: int = 0, dtype=torch.float32) -> dict[str, Weighted]:
    """Random inputs of `n_arch` architectures; W and G share positions like real caches."""
    g = torch.Generator().manual_seed(seed)
    spread = torch.rand(n_arch, 1, 1, generator=g, dtype=dtype) * 3 + 0.1
    out = {}
    for sym in INPUT_SYMBOLS:
        L = LAYERS[sym]
        values = torch.randn(n_arch, L, samples, generator=g, dtype=dtype) * spread
        weights = torch.full((n_arch, L, 1), 50.0, dtype=dtype)
        weights[0, -1] = 0.0  # the first architecture lacks its last layer of every input
        out[sym] = Weighted.from_weights(values, weights)
    return out


def planted_truth(inputs: dict[str, Weighted]):
    """Ground truth a proxy over W can recover exactly: the log of W's summed squares."""
    w = inputs["W"]
    return torch.where(w.present, w.values**2, 0.0).sum((1, 2)).log().numpy()


def synthetic_toolbox(kind: str = "typed", **toolbox_options):
    """(toolbox, evaluator) on `synthetic_inputs()` with `planted_truth`, sharing one primitive set."""
    from lpzero.primitives import OPS, build_primitive_set
    from lpzero.search import FitnessEvaluator, build_toolbox

    inputs = synthetic_inputs()
    pset = build_primitive_set(OPS)
    ev = FitnessEvaluator(pset, inputs, planted_truth(inputs))
    return build_toolbox(kind, ev, pset=pset, **toolbox_options), ev
