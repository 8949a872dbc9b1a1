"""Benchmarks and search spaces: trained architectures, ground truth, models, and what NAS picks from.

Installed as `lpzero.benchmarks`. Each model family is one folder holding its benchmark, its
model builder and its search space (`lts/`: Archai's LiteTransformerSearch GPT-2, `flexibert/`,
`lonas/`: LoNAS sub-networks of a LLaMA-family super-network); the folder's `__init__.py`
registers its names in the two registries below, as a plugin registers through an entry point.
`hf/` reads any transformers family from files (a table of architectures, a space of config
choices, one checkpoint). Shared machinery lives beside them: `base` (the `Benchmark` interface),
`space` (the `SearchSpace` interface), `tabular` (a benchmark's own architectures as a space),
`inputs` (extracting the six proxy inputs), `sites` (where they live in a transformers model, per
`model_type`), `checkpoints` (local checkpoints' dtypes, tokenizers and texts), `selection` (which
benchmark and architectures a command works on).

`get_benchmark(name)` opens a benchmark registered by name ("gpt2", "flexibert", "lonas-mini"),
by a registered prefix and its argument ("lts:PATH", "lonas:DIR"), through the entry-point group
`lpzero.benchmarks`, or as a user's "package.module:Class" / "path/to/file.py:Class": every one
through its class's `Benchmark.open`. `get_space(name)` opens a search space the same way
(`lpzero.spaces`; "tabular:BENCH" is a benchmark's own architectures).
`tests/fake_benchmark.py` is a complete small benchmark (`lpzero info tests/fake_benchmark.py:TinyGPT2Benchmark`).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

from lpzero.errors import UnknownNameError
from lpzero.registry import Registry, subclass_check

from .base import (
    Architecture,
    Batch,
    Benchmark,
    BenchmarkError,
    Site,
    WeightSite,
    ZCSites,
    default_data_root,
    resolve_data_root,
)
from .builds import BuildRecipe, recipe_check
from .space import NASError, SearchSpace, SpaceView

#: entry-point group through which other packages register benchmarks
ENTRY_POINT_GROUP = "lpzero.benchmarks"


class UnknownBenchmarkError(BenchmarkError, UnknownNameError):
    """A benchmark name that is neither built in, registered, nor a `module:Class`."""


#: benchmark classes by name, each opened by its `Benchmark.open`. The built-ins are "module:Class"
#: text: their model modules import transformers (seconds), so they load only when opened.
BENCHMARKS: Registry = Registry("benchmark", group=ENTRY_POINT_GROUP, error=BenchmarkError,
                                unknown=UnknownBenchmarkError, check=subclass_check(Benchmark),
                                forms=("module:Class", "file.py:Class"))
#: search-space classes by name, each constructed as `Class(data=..., path=..., **options)` (`path`: the text
#: after "NAME:", or None); entry points of the group `lpzero.spaces` add others
SPACES: Registry = Registry("space", group="lpzero.spaces", error=NASError, check=subclass_check(SearchSpace),
                            forms=("module:Class", "file.py:Class"))
#: benchmarks lpzero builds with their ground truth (`lpzero build NAME`), a `BuildRecipe` each; the
#: families register theirs, entry points of the group `lpzero.builds` add others
BUILDS: Registry = Registry("benchmark to build", group="lpzero.builds", error=BenchmarkError, check=recipe_check)
SPACES.register("tabular", "lpzero.benchmarks.tabular:TabularSpace", prefix=True,
                description="a benchmark's own architectures, scored exhaustively (tabular:BENCHMARK)")


def get_benchmark(name: str, data: str | os.PathLike | None = None, **options: Any) -> Benchmark:
    """The benchmark called `name` (see the module docstring), opened by its class's `Benchmark.open`.

    `data` is the data root (default: `LPZERO_DATA`, else `../shared/data`). `options` go to the
    benchmark's constructor (e.g. `hidden_size_compat=True` for FlexiBERT).
    """
    found = BENCHMARKS.lookup(name)
    return found.obj.open(canonical_name(name), found.argument, data, **options)


def canonical_name(name: str) -> str:
    """A prefix benchmark's name with its path resolved and absolute (`lts:lts`, `lts:/abs/lts/` ->
    `lts:/abs/lts`), so a cache, a found proxy's benchmark and a resume see one benchmark; other
    names unchanged. (Every registered prefix takes a path.)"""
    head, sep, argument = name.partition(":")
    if not sep or not BENCHMARKS.is_prefix(head) or not argument:
        return name
    return f"{head}:{Path(argument).expanduser().resolve()}"


def folder_name(name: str) -> str:
    """A short, unique folder name for a benchmark or space name: `lts:/abs/lts` -> `lts_lts_<hash>`
    (the path's last folder and 8 hex digits of the whole name), `gpt2` -> `gpt2`."""
    head, sep, argument = name.rpartition(":")
    if sep and ("/" in argument or "\\" in argument):
        tail = Path(argument).name or "root"
        short = hashlib.sha1(name.encode()).hexdigest()[:8]
        return f"{head.replace(':', '_')}_{tail}_{short}"
    return name.replace(":", "_").replace("/", "_")


#: benchmarks opened by `open_benchmark` in this process
_OPENED: dict[tuple, Benchmark] = {}


def open_benchmark(name: str, data: str | os.PathLike | None = None, **options: Any) -> Benchmark:
    """`get_benchmark(name, data, **options)`, opened once per process.

    Workers get settings or spaces (not benchmarks) with each task; reading a benchmark's
    data (or loading a super-network) once per process instead of once per task is what
    this is for.
    """
    key = (canonical_name(name), None if data is None else str(data), json.dumps(options, sort_keys=True))
    if key not in _OPENED:
        _OPENED[key] = get_benchmark(name, data, **options)
    return _OPENED[key]


def get_space(name: str, data: str | os.PathLike | None = None, options: dict | None = None,
              ids: Sequence[str] | None = None) -> SearchSpace:
    """The search space `name` names: constructed as `Class(data=data, path=ARGUMENT, **options)`.

    `options` are benchmark options (e.g. a LoNAS checkpoint's `adapter`); `ids` restricts a space
    that selects architectures (`SearchSpace.selects_architectures`: a tabular one) to those.
    """
    found = SPACES.lookup(name)
    cls = found.obj
    if ids is not None and not cls.selects_architectures:
        raise NASError(f"space {name}: --ids and --limit select architectures of a tabular space only")
    if found.source != "registered" and options:
        raise NASError(f"space {name}: benchmark options ({', '.join(options)}) apply to registered spaces only")
    kwargs = dict(options or {})
    if ids is not None:
        kwargs["ids"] = ids
    try:
        return cls(data=data, path=found.argument or None, **kwargs)
    except TypeError:
        if not options:
            raise
        raise NASError(f"space {name}: takes no options ({', '.join(options)})") from None


# The built-in families register their benchmarks and spaces (each folder's `__init__.py`); last,
# because they register into the registries above.
from . import lts, flexibert, lonas, hf  # noqa: E402,F401  (in the order `lpzero info` lists them)

LONAS_MINI_DIR = lonas.LONAS_MINI_DIR

__all__ = [
    "Architecture",
    "BENCHMARKS",
    "BUILDS",
    "Batch",
    "BuildRecipe",
    "Benchmark",
    "BenchmarkError",
    "ENTRY_POINT_GROUP",
    "LONAS_MINI_DIR",
    "NASError",
    "SPACES",
    "SearchSpace",
    "Site",
    "SpaceView",
    "UnknownBenchmarkError",
    "WeightSite",
    "ZCSites",
    "canonical_name",
    "default_data_root",
    "folder_name",
    "get_benchmark",
    "get_space",
    "open_benchmark",
    "resolve_data_root",
]
