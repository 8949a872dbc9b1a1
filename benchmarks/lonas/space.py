"""The LoNAS search space as data: per-layer groups of elastic choices, and LoNAS's presets.

A sub-network is a `Choice` (group name -> value); `LoNASSpace` validates, samples,
names (`pick`) and codes it as a genome (`encode`/`decode`, one gene per group).
`lonas_space` scales LoNAS's LLaMA-7B ratios to any depth and FFN width.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Literal, Mapping

import numpy as np

from ..base import BenchmarkError

#: the modules LoNAS adapts with LoRA, in every decoder layer
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "up_proj", "gate_proj", "down_proj")
#: LoNAS's LoRA settings for LLaMA (r, alpha, dropout)
LONAS_RANK, LONAS_ALPHA, LONAS_DROPOUT = 32, 64, 0.1
#: FFN widths as fractions of the base width, and rank choices as fractions of r (LoNAS's ratios)
WIDTH_RATIOS = (1.0, 0.875, 0.75, 0.625, 0.5)
RANK_RATIOS = (1.0, 0.875)

Choice = dict[str, int]


@dataclass(frozen=True)
class Group:
    """One elastic choice of a layer.

    kind "rank": the LoRA rank of `modules` (rows of lora_A, columns of lora_B).
    kind "width": the FFN width: rows of `modules` (base weight, bias, lora_B) and
    columns of `inputs` (base weight, lora_A). Module names are relative to a decoder
    layer, e.g. "mlp.gate_proj". `choices` start with the super-network's value.
    """

    name: str
    layer: int
    kind: Literal["rank", "width"]
    modules: tuple[str, ...]
    choices: tuple[int, ...]
    inputs: tuple[str, ...] = ()

    @property
    def family(self) -> str:
        """The group without its layer, e.g. "ffn_width" (for per-family summaries)."""
        return self.name.split(".", 1)[1]


@dataclass(frozen=True)
class LoNASSpace:
    """A LoNAS search space: per-layer groups of choices, and the LoRA settings they slice."""

    name: str
    groups: tuple[Group, ...]
    lora_rank: int
    lora_alpha: int
    num_layers: int
    intermediate_size: int

    def __post_init__(self) -> None:
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise BenchmarkError(f"space {self.name!r}: duplicate group names")
        for g in self.groups:
            if not g.choices or any(c < 1 for c in g.choices) or g.choices[0] != max(g.choices):
                raise BenchmarkError(f"space {self.name!r}: group {g.name} needs positive choices, largest first")
            limit = self.lora_rank if g.kind == "rank" else self.intermediate_size
            if g.choices[0] > limit:
                raise BenchmarkError(f"space {self.name!r}: group {g.name} choice {g.choices[0]} exceeds {limit}")

    @property
    def size(self) -> int:
        """The number of sub-networks."""
        return math.prod(len(g.choices) for g in self.groups)

    def check(self, choice: Mapping[str, int]) -> Choice:
        """`choice` as a full, validated mapping group -> value (BenchmarkError names the problem)."""
        if not isinstance(choice, Mapping):
            raise BenchmarkError(f"space {self.name!r}: a sub-network is an object of group -> value, got {choice!r}")
        unknown = set(choice) - {g.name for g in self.groups}
        if unknown:
            raise BenchmarkError(f"space {self.name!r}: unknown group(s) {sorted(unknown)[:3]}")
        out = {}
        for g in self.groups:
            if g.name not in choice:
                raise BenchmarkError(f"space {self.name!r}: no value for group {g.name}")
            value = choice[g.name]
            # a bool is an int to Python (True == 1): a choice of true is a mistake, not rank 1
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value not in g.choices:
                raise BenchmarkError(f"space {self.name!r}: {g.name}={value} is not one of {list(g.choices)}")
            out[g.name] = int(value)
        return out

    def pick(self, position: str) -> Choice:
        """"max", "min" or "heuristic" (LoNAS's: each group's middle choice) sub-network."""
        index = {"max": lambda n: 0, "min": lambda n: n - 1, "heuristic": lambda n: (n - 1) // 2}
        if position not in index:
            raise BenchmarkError(f"unknown named sub-network {position!r} (max, min, heuristic)")
        return {g.name: g.choices[index[position](len(g.choices))] for g in self.groups}

    def sample(self, rng: np.random.Generator) -> Choice:
        """A uniformly random sub-network."""
        return {g.name: int(g.choices[rng.integers(len(g.choices))]) for g in self.groups}

    def encode(self, choice: Mapping[str, int]) -> list[int]:
        """The sub-network as choice indices, in group order (a NAS genome)."""
        choice = self.check(choice)
        return [g.choices.index(choice[g.name]) for g in self.groups]

    def decode(self, genome: Iterable[int]) -> Choice:
        """The sub-network a genome of choice indices codes."""
        genome = list(genome)
        if len(genome) != len(self.groups):
            raise BenchmarkError(f"space {self.name!r}: a genome has {len(self.groups)} genes, got {len(genome)}")
        return {g.name: g.choices[i] for g, i in zip(self.groups, genome)}

    def to_json(self) -> dict:
        """The space as `space.json` stores it (`from_json` reads it back)."""
        return {"name": self.name, "lora_rank": self.lora_rank, "lora_alpha": self.lora_alpha,
                "num_layers": self.num_layers, "intermediate_size": self.intermediate_size,
                "groups": [asdict(g) for g in self.groups]}

    @classmethod
    def from_json(cls, data: Any, where: str = "space") -> "LoNASSpace":
        """The space `to_json` wrote; `where` names the source in errors (the file and the key at fault)."""
        bad = f"{where}: malformed LoNAS space"
        if not isinstance(data, dict):
            raise BenchmarkError(f"{bad}: expected a JSON object, got {type(data).__name__}")
        for key in ("name", "groups", "lora_rank", "lora_alpha", "num_layers", "intermediate_size"):
            if key not in data:
                raise BenchmarkError(f"{bad}: key {key!r} is missing")
        if not isinstance(data["name"], str):
            raise BenchmarkError(f"{bad}: name is {data['name']!r} (expected a string)")
        sizes = {key: positive_int(data[key], bad, key)
                 for key in ("lora_rank", "lora_alpha", "num_layers", "intermediate_size")}
        if not isinstance(data["groups"], list) or not data["groups"]:
            raise BenchmarkError(f"{bad}: groups is {data['groups']!r} (expected a non-empty list of groups)")
        groups = tuple(_group_from_json(g, f"{bad}: groups[{k}]", sizes["num_layers"])
                       for k, g in enumerate(data["groups"]))
        try:
            return cls(data["name"], groups, **sizes)
        except BenchmarkError as e:  # the space's own rules (unique names, choices in range): name the file
            raise BenchmarkError(f"{where}: {e}") from None


def positive_int(value: Any, where: str, key: str) -> int:
    """`value` if it is a positive integer (not a bool, a float or a string); else BenchmarkError naming `key`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BenchmarkError(f"{where}: {key} is {value!r} (expected a positive integer)")
    return value


def _group_from_json(g: Any, where: str, num_layers: int) -> Group:
    """One group of a space file (`where` names it), checked field by field."""
    if not isinstance(g, dict):
        raise BenchmarkError(f"{where}: expected an object, got {g!r}")
    for key in ("name", "layer", "kind", "modules", "choices"):
        if key not in g:
            raise BenchmarkError(f"{where}: key {key!r} is missing")
    if not isinstance(g["name"], str):
        raise BenchmarkError(f"{where}: name is {g['name']!r} (expected a string)")
    layer = g["layer"]
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < num_layers:
        raise BenchmarkError(f"{where}: layer is {layer!r} (expected 0 to {num_layers - 1})")
    if g["kind"] not in ("rank", "width"):
        raise BenchmarkError(f"{where}: kind is {g['kind']!r} (expected 'rank' or 'width')")
    for key in ("modules", "inputs"):  # which names a decoder has is the benchmark's check (`Decoder.module`)
        names = g.get(key, [])
        if not isinstance(names, list) or not all(isinstance(m, str) for m in names) or (
                key == "modules" and not names):
            raise BenchmarkError(f"{where}: {key} is {names!r} (expected a list of module names, e.g. "
                                 "'mlp.gate_proj')")
    if not isinstance(g["choices"], list) or not g["choices"]:
        raise BenchmarkError(f"{where}: choices is {g['choices']!r} (expected a non-empty list of positive integers)")
    choices = tuple(positive_int(c, where, "choices") for c in g["choices"])
    return Group(g["name"], layer, g["kind"], tuple(g["modules"]), choices, tuple(g.get("inputs", [])))


def lonas_space(num_layers: int, intermediate_size: int, lora_rank: int = LONAS_RANK,
                lora_alpha: int = LONAS_ALPHA, name: str | None = None) -> LoNASSpace:
    """LoNAS's space for a model of this depth and FFN width, with LoNAS's ratios.

    Per layer: the rank of q/k/v (one choice for the three), the FFN width, the rank of
    gate/up; down keeps rank r. `lonas_space(32, 11008)` is LoNAS's LLaMA-7B space.
    """
    ranks = tuple(dict.fromkeys(max(1, round(lora_rank * r)) for r in RANK_RATIOS))
    widths = tuple(dict.fromkeys(max(1, round(intermediate_size * r)) for r in WIDTH_RATIOS))
    groups = []
    for i in range(num_layers):
        groups += [
            Group(f"L{i}.qkv_rank", i, "rank", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), ranks),
            Group(f"L{i}.ffn_width", i, "width", ("mlp.gate_proj", "mlp.up_proj"), widths, ("mlp.down_proj",)),
            Group(f"L{i}.gate_up_rank", i, "rank", ("mlp.gate_proj", "mlp.up_proj"), ranks),
        ]
    return LoNASSpace(name or f"lonas-{num_layers}x{intermediate_size}", tuple(groups), lora_rank, lora_alpha,
                      num_layers, intermediate_size)


#: named spaces; "llama-7b" is LoNAS's configuration for LLaMA-7B (2^64 * 5^32 sub-networks)
SPACE_PRESETS = {"llama-7b": lonas_space(32, 11008, name="llama-7b")}


def choice_id(space: LoNASSpace, choice: Mapping[str, int]) -> str:
    """A short, stable name of a sub-network: "s" + its genome in base 36 per gene."""
    return "s" + "".join(np.base_repr(i, 36).lower() for i in space.encode(choice))
