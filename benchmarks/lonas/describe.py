"""What `lpzero info` says of a LoNAS benchmark beyond the common summary (`LoNASBenchmark.describe_space`)."""
from __future__ import annotations

import math
from typing import Any

from .space import choice_id

# `bench` is a `benchmark.LoNASBenchmark`, typed `Any` because benchmark.py imports this module
LoNASBenchmark = Any

#: what `lpzero info` says of a build of each size (`build.SIZES`; build.json's "size_name")
BUILD_SIZES = {"mini": "mini (the benchmark)", "smoke": "smoke (a seconds-long toy size, not a benchmark)"}
#: how many architecture ids `lpzero info` lists before it elides the middle ones
SHOWN_IDS = 6


def describe_lonas(bench: LoNASBenchmark) -> list[tuple[str, str]]:
    """(label, text) rows: the build's size (a built directory), the dtype the models load in, the text,
    where the space came from, its groups by family with their layers and choices, the number of
    sub-networks, the architectures' ids and how `lpzero nas` names a sub-network."""
    rows = []
    if bench.build_size is not None:
        rows.append(("build", BUILD_SIZES.get(bench.build_size, bench.build_size)))
    rows.append(("dtype", _dtype(bench)))
    rows.append(("text", str(bench.text_path) if bench.text_path is not None else "WikiText-2 valid"))
    rows.append(("space", f"{bench.space.name}, {bench.space_source}"))
    families: dict[tuple[str, tuple[int, ...]], list[int]] = {}
    for g in bench.space.groups:
        families.setdefault((g.family, g.choices), []).append(g.layer)
    for (family, choices), layers in families.items():
        rows.append(("", f"{family:<14}{_layer_span(layers):<10}{', '.join(map(str, choices))}"))
    size = bench.space.size
    rows.append(("sub-networks", f"{size:,}" if size < 10 ** 15 else f"{float(size):.3e}"))
    ids, space = bench.ids(), bench.space
    known = ("no ground truth: LoNAS's named sub-networks" if math.isnan(bench.architecture(ids[0]).raw)
             else "ground_truth.json")
    rows.append(("ids", f"{_id_list(ids)} ({len(ids)}, {known})"))
    ends = f"max {choice_id(space, space.pick('max'))}, min {choice_id(space, space.pick('min'))}"
    rows.append(("nas ids", f"s + each group's choice index in base 36, 0 = its largest ({ends})"))
    return rows


def _dtype(bench: LoNASBenchmark) -> str:
    """The dtype the models load in, and whether it is the checkpoint's own."""
    name = str(bench.dtype).removeprefix("torch.")
    stored = bench.base_config.get("dtype") or bench.base_config.get("torch_dtype") or "float32"
    return f"{name} (the checkpoint's own)" if name == stored else f"{name} (--dtype; the checkpoint stores {stored})"


def _id_list(ids: list[str]) -> str:
    """"max, heuristic, min" or, for many, the first and the last ones around an ellipsis."""
    if len(ids) <= SHOWN_IDS:
        return ", ".join(ids)
    return f"{', '.join(ids[:SHOWN_IDS - 2])}, ..., {ids[-1]}"


def _layer_span(layers: list[int]) -> str:
    """"L0-L31" for consecutive layers, else "L0,L2"."""
    if layers == list(range(layers[0], layers[-1] + 1)):
        return f"L{layers[0]}" if len(layers) == 1 else f"L{layers[0]}-L{layers[-1]}"
    return ",".join(f"L{i}" for i in layers)
