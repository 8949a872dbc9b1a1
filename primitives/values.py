"""Runtime values a proxy tree computes on, for many architectures at once.

A proxy input (say W) of N architectures is a `Weighted` with
`values[N, L, K]`: L = the most per-layer tensors any of them has, K = elements kept
per tensor. `weights` ([N, L, 1] or [N, L, K]) says how many elements of the *full*
tensor each kept element stands for: 1 for a tensor kept whole or an element kept
exactly, the size of its stratum for a sampled one. `present[N, L, K]` marks padding (an absent layer, or the tail of a tensor
with fewer than K elements) as absent. Every
reduction is a weighted reduction over the last axis, so a sum, a norm or a softmax
denominator computed from a sample estimates the full tensor's value, and the same
code runs on full tensors.

Reducing `[N, L, K] -> [N, L]` gives per-layer values (weights: 1 where the layer
exists); reducing `[N, L] -> [N]` gives one score per architecture.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

#: smallest magnitude a denominator or a log argument is allowed to have
EPS = 1e-12


@dataclass(frozen=True)
class Weighted:
    """Values with weights and a presence mask, reduced along the last axis.

    `values` [..., K]; `weights` [..., 1] or [..., K]: how many full elements each present
    element of the row stands for; `present` [..., K] bool: which elements exist.
    """

    values: torch.Tensor
    weights: torch.Tensor
    present: torch.Tensor

    @classmethod
    def from_weights(cls, values: torch.Tensor, weights: torch.Tensor) -> "Weighted":
        """From per-row weights (0 marks an absent row); every element of a present row exists."""
        return cls(values, weights, (weights > 0).expand_as(values))

    def with_values(self, values: torch.Tensor) -> "Weighted":
        return Weighted(values, self.weights, self.present)

    def to(self, device: str | torch.device) -> "Weighted":
        return Weighted(self.values.to(device), self.weights.to(device), self.present.to(device))


def _zero(v: torch.Tensor) -> torch.Tensor:
    return torch.zeros((), dtype=v.dtype, device=v.device)


def weighted_sum(x: Weighted, values: torch.Tensor | None = None) -> torch.Tensor:
    v = x.values if values is None else values
    return (torch.where(x.present, v, _zero(v)) * x.weights).sum(-1)


def weight_total(x: Weighted) -> torch.Tensor:
    return (x.present.to(x.weights.dtype) * x.weights).sum(-1)


def reduced(x: Weighted, out: torch.Tensor) -> Weighted:
    """Wrap the result of reducing the last axis: a row is present if any element was."""
    present = x.present.any(-1)
    return Weighted(out, torch.ones(*out.shape[:-1], 1, dtype=out.dtype, device=out.device), present)


def masked_extreme(x: Weighted, largest: bool) -> torch.Tensor:
    fill = float("-inf") if largest else float("inf")
    v = torch.where(x.present, x.values, torch.full((), fill, dtype=x.values.dtype, device=x.values.device))
    out = v.amax(-1, keepdim=True) if largest else v.amin(-1, keepdim=True)
    # An all-absent row has no extreme; 0 keeps the (masked) arithmetic finite.
    return torch.where(torch.isfinite(out), out, torch.zeros_like(out))


def safe_denominator(x: torch.Tensor) -> torch.Tensor:
    """`x` with magnitudes below EPS pushed to ±EPS (sign kept, 0 -> +EPS)."""
    sign = torch.where(x < 0, -1.0, 1.0).to(x.dtype)
    return torch.where(x.abs() < EPS, sign * EPS, x)
