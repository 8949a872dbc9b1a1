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
from typing import Iterable, Protocol

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


@dataclass(frozen=True)
class RowShape:
    """What is known of one per-layer tensor (a row) once the forward pass has run."""

    layer: int
    name: str
    numel: int


#: per input, its rows in block order (the order of `ProxyInputs`' lists)
Layout = dict[str, list[RowShape]]


class RowReducer(Protocol):
    """What `stream_inputs` hands each row to, as soon as the row exists.

    `begin(layout)` comes once, after the forward pass, before any row: every row's size is
    known then. `rows(index, tensors)` comes once per row index of each group of inputs, in
    no fixed order: {"A": ...} for activations (and H, S, J alike), {"W": ..., "G": ...} for a
    weight site (either alone when only one is wanted). G is dropped by its parameter right
    after the call: a reducer that keeps no reference to it lets its memory go at once.
    """

    def begin(self, layout: Layout) -> None: ...

    def rows(self, index: int, tensors: dict[str, LayerTensor]) -> None: ...


class KeepRows:
    """The reducer that keeps every row whole: `extract_inputs`' full inputs."""

    def __init__(self) -> None:
        self.inputs: ProxyInputs = {s: [] for s in SYMBOLS}

    def begin(self, layout: Layout) -> None:
        self.inputs = {s: [None] * len(layout.get(s, ())) for s in SYMBOLS}

    def rows(self, index: int, tensors: dict[str, LayerTensor]) -> None:
        for sym, row in tensors.items():
            self.inputs[sym][index] = row


def extract_inputs(benchmark: Benchmark, model: nn.Module, batch: Batch,
                   symbols: Iterable[str] = SYMBOLS) -> ProxyInputs:
    """A, J, G, H, W, S of `model` on `batch` (one forward, one backward), every tensor whole.

    Only `symbols` are extracted; the others are left empty. When none of them needs a
    gradient (only A, H, S, W), the pass is one forward without autograd, which gives
    the same values at a fraction of the cost. The model is put in eval mode (no
    dropout), so the same weights and batch give the same inputs. Gradients are left zeroed.
    All gradients are held at once: `stream_inputs` reduces each as backward produces it.
    """
    keep = KeepRows()
    stream_inputs(benchmark, model, batch, keep, symbols)
    return keep.inputs


def stream_inputs(benchmark: Benchmark, model: nn.Module, batch: Batch, reducer: RowReducer,
                  symbols: Iterable[str] = SYMBOLS) -> None:
    """The pass of `extract_inputs`, each row handed to `reducer` as soon as it exists.

    A, H, S (and W without G) after the forward pass; each weight site's (W, G) in its
    parameter's post-accumulate-grad hook, after which the gradient is dropped, so backward
    never holds more than the gradients of the parameters it is working on; J after backward.
    The values are exactly `extract_inputs`' (which is this pass with `KeepRows`).
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
    recorded: ProxyInputs = {s: [] for s in SYMBOLS}
    for target, tensor in rec.calls:  # in the order the forward pass ran them
        if target:
            key, site, i = keyed[target - 1]
            recorded[key].append(LayerTensor(site.layer, site.name or f"{key}{i}", tensor.detach()))
    embedding = rec.per_target[0]
    del rec  # the rows below are the only references this pass keeps to what it recorded
    if backward and len(embedding) != 1:
        raise BenchmarkError(f"{benchmark.name}: the embedding site ran {len(embedding)} times (expected once)")
    layout: Layout = {s: [RowShape(lt.layer, lt.name, lt.stored.numel()) for lt in recorded[s]] for s in SYMBOLS}
    for sym in "WG":
        if sym in wanted:
            layout[sym] = [RowShape(ws.layer, ws.name, ws.param.numel()) for ws in sites.weights]
    if "J" in wanted:
        layout["J"] = [RowShape(0, "embedding", embedding[0].numel())]
    reducer.begin(layout)
    for sym in "AHS":
        rows, recorded[sym] = recorded[sym], []
        for index, row in enumerate(rows):
            reducer.rows(index, {sym: row})
    if not backward:
        for index, ws in enumerate(sites.weights if "W" in wanted else ()):
            reducer.rows(index, {"W": LayerTensor(ws.layer, ws.name, ws.param.detach())})
        return
    weight_group = [s for s in "WG" if s in wanted]
    # a parameter may be read by several sites: each of them gets its gradient
    site_indices: dict[int, list[int]] = {}
    for index, ws in enumerate(sites.weights):
        site_indices.setdefault(id(ws.param), []).append(index)
    pending = set(range(len(sites.weights)))

    def hand_over(param: torch.Tensor, grad: torch.Tensor) -> None:
        for index in site_indices[id(param)] if weight_group else ():
            ws = sites.weights[index]
            pair = {"W": param.detach(), "G": grad.detach()}
            reducer.rows(index, {s: LayerTensor(ws.layer, ws.name, pair[s]) for s in weight_group})
            pending.discard(index)

    def on_gradient(param: torch.Tensor) -> None:
        if id(param) in site_indices:
            hand_over(param, param.grad)
        # reduced (or not read at all): the gradient goes at once, so gradients never pile up
        param.grad = None

    handles = []
    try:
        params = {id(p): p for p in model.parameters()} | {id(ws.param): ws.param for ws in sites.weights}
        handles = [p.register_post_accumulate_grad_hook(on_gradient) for p in params.values() if p.requires_grad]
        embedding[0].retain_grad()
        loss.backward()
        if embedding[0].grad is None:
            raise BenchmarkError(f"{benchmark.name}: the embedding site did not receive a gradient")
        for index in sorted(pending):  # no gradient reached them (or they need none): zeros, as the gradient is
            param = sites.weights[index].param
            hand_over(param, torch.zeros_like(param))
        if "J" in wanted:
            reducer.rows(0, {"J": LayerTensor(0, "embedding", embedding[0].grad.detach())})
    finally:
        for handle in handles:
            handle.remove()
        model.zero_grad(set_to_none=True)


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
