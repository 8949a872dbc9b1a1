"""Pull the six proxy inputs out of a model with one forward and one backward pass.

Extraction is by hooks on the modules a benchmark names in its `ZCSites`; the
models are not edited. Which modules and shapes each input takes, per model family,
is documented next to each benchmark's `zc_sites` and in the README.

Per input, the result is a list of `LayerTensor`s in block order. An input a block
does not have (no softmax in a Fourier layer) simply has no entry for that block;
`LayerTensor.layer` keeps the block index so the absence stays visible.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from .base import Batch, Benchmark, Site

SYMBOLS = ("A", "J", "G", "H", "W", "S")


@dataclass
class LayerTensor:
    layer: int
    name: str
    tensor: torch.Tensor


ProxyInputs = dict[str, list[LayerTensor]]


@contextlib.contextmanager
def _hooks(handles: list):
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _capture(site: Site, sink: list[LayerTensor], label: str):
    def store(t: torch.Tensor) -> None:
        sink.append(LayerTensor(site.layer, label, t.detach().float()))

    if site.where == "input":
        return site.module.register_forward_pre_hook(lambda m, args: store(args[0]))
    return site.module.register_forward_hook(lambda m, args, out: store(out[0] if isinstance(out, tuple) else out))


def extract_inputs(benchmark: Benchmark, model: nn.Module, batch: Batch) -> ProxyInputs:
    """A, J, G, H, W, S of `model` on `batch` (one forward, one backward).

    The model is put in eval mode (no dropout), so the same weights and batch give
    the same inputs. Gradients are left zeroed.
    """
    model.eval()
    model.zero_grad(set_to_none=True)
    sites = benchmark.zc_sites(model)
    out: ProxyInputs = {s: [] for s in SYMBOLS}
    embedding: list[torch.Tensor] = []

    def keep_embedding(module, args, output):
        output = output[0] if isinstance(output, tuple) else output
        output.retain_grad()
        embedding.append(output)

    handles = [sites.embedding.register_forward_hook(keep_embedding)]
    for key, group in (("A", sites.activations), ("H", sites.heads), ("S", sites.softmax)):
        for i, site in enumerate(group):
            handles.append(_capture(site, out[key], site.name or f"{key}{i}"))
    with _hooks(handles):
        loss = benchmark.loss(model, batch)
        loss.backward()
    if len(embedding) != 1 or embedding[0].grad is None:
        raise RuntimeError(f"{benchmark.name}: the embedding site did not receive a gradient")
    out["J"] = [LayerTensor(0, "embedding", embedding[0].grad.detach().float())]
    for ws in sites.weights:
        out["W"].append(LayerTensor(ws.layer, ws.name, ws.param.detach().float()))
        grad = ws.param.grad if ws.param.grad is not None else torch.zeros_like(ws.param)
        out["G"].append(LayerTensor(ws.layer, ws.name, grad.detach().float().clone()))
    model.zero_grad(set_to_none=True)
    return out
