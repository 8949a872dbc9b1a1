"""Pull the six proxy inputs out of a model with one forward and one backward pass.

Extraction is by hooks on the modules a benchmark names in its `ZCSites`; the
models are not edited. Which modules and shapes each input takes, per model family,
is documented next to each benchmark's `zc_sites` and in docs/concepts.md.

Per input, the result is a list of `LayerTensor`s in block order. An input a block
does not have (no softmax in a Fourier layer) simply has no entry for that block;
`LayerTensor.layer` keeps the block index so the absence stays visible.

Every tensor is kept in the model's own dtype (a bfloat16 model's W are its parameters,
its G the gradients backward produced) and `LayerTensor.tensor` gives it in float32 when
read: values are reduced in float32 one tensor at a time, and no float32 copy of the
whole model or of all its gradients is ever held.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn

from lpzero.primitives import INPUT_SYMBOLS, Weighted

from .base import Batch, Benchmark, BenchmarkError
from .hooks import recording, site_targets

#: the six inputs, in the argument order of compiled trees
SYMBOLS = INPUT_SYMBOLS


@dataclass
class LayerTensor:
    """One block's tensor of one input, as the model computed it (`stored`, any float dtype)."""

    layer: int
    name: str
    stored: torch.Tensor

    @property
    def tensor(self) -> torch.Tensor:
        """The tensor in float32: `stored` itself for a float32 model, else a fresh copy per read
        (so a bfloat16 model's weights are converted one tensor at a time, when a proxy reads them)."""
        return self.stored.float()


ProxyInputs = dict[str, list[LayerTensor]]


#: the inputs one forward pass gives; J and G need the backward pass
FORWARD_SYMBOLS = frozenset("AHSW")


def extract_inputs(benchmark: Benchmark, model: nn.Module, batch: Batch,
                   symbols: Iterable[str] = SYMBOLS) -> ProxyInputs:
    """A, J, G, H, W, S of `model` on `batch` (one forward, one backward).

    Only `symbols` are extracted; the others are left empty. When none of them needs a
    gradient (only A, H, S, W), the pass is one forward without autograd, which gives
    the same values at a fraction of the cost. The model is put in eval mode (no
    dropout), so the same weights and batch give the same inputs. Gradients are left zeroed.
    """
    wanted = set(symbols)
    backward = not wanted <= FORWARD_SYMBOLS
    model.eval()
    model.zero_grad(set_to_none=True)
    sites = benchmark.zc_sites(model)
    groups = (("A", sites.activations), ("H", sites.heads), ("S", sites.softmax))
    # target i + 1 is sites[i] of input key[i]; 0 is the embedding
    keyed = [(key, site, i) for key, group in groups if key in wanted for i, site in enumerate(group)]
    targets = [(sites.embedding, "output")] + site_targets(site for _, site, _ in keyed)
    with torch.set_grad_enabled(backward), recording(targets) as rec:
        loss = benchmark.loss(model, batch)
    out: ProxyInputs = {s: [] for s in SYMBOLS}
    for target, tensor in rec.calls:  # in the order the forward pass ran them
        if target:
            key, site, i = keyed[target - 1]
            out[key].append(LayerTensor(site.layer, site.name or f"{key}{i}", tensor.detach()))
    if "W" in wanted:
        out["W"] = [LayerTensor(ws.layer, ws.name, ws.param.detach()) for ws in sites.weights]
    if not backward:
        return out
    embedding = rec.per_target[0]
    if len(embedding) != 1:
        raise BenchmarkError(f"{benchmark.name}: the embedding site ran {len(embedding)} times (expected once)")
    embedding[0].retain_grad()
    loss.backward()
    if embedding[0].grad is None:
        raise BenchmarkError(f"{benchmark.name}: the embedding site did not receive a gradient")
    if "J" in wanted:
        out["J"] = [LayerTensor(0, "embedding", embedding[0].grad.detach())]
    for ws in sites.weights:
        grad = ws.param.grad if ws.param.grad is not None else torch.zeros_like(ws.param)
        # the gradient is taken over, not copied (at 7B a copy is tens of gigabytes): the
        # parameter lets go of it, so a later backward cannot accumulate into G
        ws.param.grad = None
        if "G" in wanted:
            out["G"].append(LayerTensor(ws.layer, ws.name, grad.detach()))
    model.zero_grad(set_to_none=True)
    return out


def as_weighted(inputs: ProxyInputs, device: str | torch.device = "cpu",
                symbols: Iterable[str] = SYMBOLS) -> dict[str, Weighted]:
    """Full (unsampled) inputs of one architecture as `Weighted` [1, L, max numel].

    Only `symbols` are built (each pads every layer to the largest, which for W and G
    of a large model is gigabytes); the others are empty and must not be read.
    """
    wanted = set(symbols)
    out = {}
    for sym in SYMBOLS:
        # the stored tensors: each is converted to float32 as it is copied in, one at a time
        tensors = [lt.stored.reshape(-1) for lt in inputs[sym]] if sym in wanted else []
        width = max([t.numel() for t in tensors], default=1)
        values = torch.zeros(1, max(1, len(tensors)), width, device=device)
        present = torch.zeros(values.shape, dtype=torch.bool, device=device)
        for layer, t in enumerate(tensors):
            values[0, layer, : t.numel()] = t
            present[0, layer, : t.numel()] = True
        out[sym] = Weighted(values, torch.ones(1, values.shape[1], 1, device=device), present)
    return out
