"""Recording what modules see in a forward pass: the one forward-hook recorder of lpzero.

Both the six-input extraction (`lpzero.benchmarks.inputs`) and the hand-designed
proxies' shared pass (`lpzero.proxies`) read module inputs and outputs through
`recording`; the models themselves are never edited.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import torch
from torch import nn

from .base import BenchmarkError, Site, Where


def first_tensor(value: object, index: int = 0) -> torch.Tensor:
    """The tensor of a module's input or output; of a tuple (e.g. (output, weights)), item `index`."""
    if isinstance(value, (tuple, list)):
        if index >= len(value):
            raise BenchmarkError(f"a proxy site reads item {index} of a module's {len(value)} outputs")
        value = value[index]
    while isinstance(value, (tuple, list)):
        value = value[0]
    if not isinstance(value, torch.Tensor):
        raise BenchmarkError(f"expected a tensor at a proxy site, got {type(value).__name__}")
    return value


@dataclass
class Recording:
    """What the targets of `recording` saw: per target, and all calls in the order they ran."""

    per_target: list[list[torch.Tensor]]
    #: (target index, tensor) in call order
    calls: list[tuple[int, torch.Tensor]] = field(default_factory=list)


@contextlib.contextmanager
def recording(targets: Sequence[tuple]) -> Iterator[Recording]:
    """Record each module's input or output ("input"/"output") on every call.

    A target is (module, where) or (module, where, index): `index` picks the item of
    a tuple the module returns (e.g. 1: the attention probabilities of (output, probs)).
    A module called twice in a forward pass records twice. Inputs are taken before the
    module runs, outputs after. The tensors are the graph's own (not detached), so a
    caller can differentiate with respect to them. The hooks are removed on exit,
    whatever happens.
    """
    targets = list(targets)
    rec = Recording([[] for _ in targets])
    handles = []

    items = [t[2] if len(t) > 2 else 0 for t in targets]

    def store(index: int, value: object) -> None:
        tensor = first_tensor(value, items[index])
        rec.per_target[index].append(tensor)
        rec.calls.append((index, tensor))

    def input_hook(index: int) -> Callable:
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            store(index, args if args else next(iter(kwargs.values())))
        return hook

    def output_hook(index: int) -> Callable:
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            store(index, output)
        return hook

    try:
        for index, (module, where, *_) in enumerate(targets):
            if where == "input":
                handles.append(module.register_forward_pre_hook(input_hook(index), with_kwargs=True))
            else:
                handles.append(module.register_forward_hook(output_hook(index)))
        yield rec
    finally:
        for handle in handles:
            handle.remove()


def site_targets(sites: Iterable[Site]) -> list[tuple[nn.Module, Where, int]]:
    """(module, where, output index) of each site, for `recording`."""
    return [(s.module, s.where, s.output_index) for s in sites]
