"""Marker types of the strongly typed proxy trees, and the six inputs.

Three levels (matrix / vector / scalar; docs/concepts.md, "Types"):

- `*Tensors` (matrix level): one tensor per layer of one input family.
- `*Layers` (vector level): one number per layer of that family.
- `Scalar`: one number per architecture; the root of every proxy.

Tensors of different families have different shapes and layer counts (a weight
matrix is not an activation map), so each family has its own pair of types and an
element-wise binary op only joins two values of the same type: the paper's "shape
mismatching problem" cannot be built. W and G share a family because G = dL/dW has
W's shape, and their stored samples are taken at the same positions.

DEAP matches argument types with `issubclass`; the family types are siblings, never
used as each other's argument types.
"""
from __future__ import annotations

from dataclasses import dataclass


class ProxyType:
    """Base of all marker types (never an argument type itself)."""

    level: str = ""
    family: str = ""
    code: str = ""


class Scalar(ProxyType):
    level, family, code = "scalar", "", "s"


class WeightTensors(ProxyType):
    level, family, code = "tensors", "W", "Tw"


class WeightLayers(ProxyType):
    level, family, code = "layers", "W", "Lw"


class ActivationTensors(ProxyType):
    level, family, code = "tensors", "A", "Ta"


class ActivationLayers(ProxyType):
    level, family, code = "layers", "A", "La"


class HeadTensors(ProxyType):
    level, family, code = "tensors", "H", "Th"


class HeadLayers(ProxyType):
    level, family, code = "layers", "H", "Lh"


class JacobTensors(ProxyType):
    level, family, code = "tensors", "J", "Tj"


class JacobLayers(ProxyType):
    level, family, code = "layers", "J", "Lj"


class SoftmaxTensors(ProxyType):
    level, family, code = "tensors", "S", "Ts"


class SoftmaxLayers(ProxyType):
    level, family, code = "layers", "S", "Ls"


#: family -> (tensor type, per-layer type)
FAMILIES: dict[str, tuple[type[ProxyType], type[ProxyType]]] = {
    "W": (WeightTensors, WeightLayers),
    "A": (ActivationTensors, ActivationLayers),
    "H": (HeadTensors, HeadLayers),
    "J": (JacobTensors, JacobLayers),
    "S": (SoftmaxTensors, SoftmaxLayers),
}

ALL_TYPES: tuple[type[ProxyType], ...] = (Scalar,) + tuple(t for pair in FAMILIES.values() for t in pair)
TYPES_BY_CODE: dict[str, type[ProxyType]] = {t.code: t for t in ALL_TYPES}


def reduced_type(t: type[ProxyType]) -> type[ProxyType]:
    """The type one level down: tensors -> layers -> scalar."""
    if t.level == "tensors":
        return FAMILIES[t.family][1]
    if t.level == "layers":
        return Scalar
    raise ValueError(f"{t.__name__} cannot be reduced further")


@dataclass(frozen=True)
class InputSpec:
    """One of the six proxy inputs (a terminal of every tree)."""

    symbol: str
    name: str
    type: type[ProxyType]
    doc: str


#: the six inputs θ (docs/concepts.md, "The six inputs"), in the argument order of compiled trees
INPUTS: tuple[InputSpec, ...] = (
    InputSpec("A", "activation", ActivationTensors, "outputs of each block's feed-forward activation"),
    InputSpec("J", "jacobs", JacobTensors, "gradient of the objective w.r.t. the embedding output, per sample"),
    InputSpec("G", "gradients", WeightTensors, "dL/dW of each block weight matrix"),
    InputSpec("H", "head", HeadTensors, "outputs of the attention heads / token-mixing operation"),
    InputSpec("W", "weight", WeightTensors, "weight matrices of the blocks' linear layers"),
    InputSpec("S", "softmax", SoftmaxTensors, "attention probability maps"),
)
INPUT_SYMBOLS: tuple[str, ...] = tuple(spec.symbol for spec in INPUTS)
