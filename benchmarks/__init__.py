"""Benchmarks: trained architectures, ground truth, model builders, mini-batches.

Installed as `lpzero.benchmarks`. `get_benchmark(name)` opens:

- a built-in: "gpt2", "flexibert", "lts:PATH" (any results directory in the
  Archai / LiteTransformerSearch layout), "lonas-mini" (built by `lpzero build
  lonas-mini`) or "lonas:PATH" (a built LoNAS directory or a local LLaMA checkpoint);
- a benchmark a package registers in the entry-point group `lpzero.benchmarks`
  (the entry point names a `Benchmark` subclass);
- a user's own class, as "package.module:Class" or "path/to/file.py:Class".

A benchmark class is constructed as `Class(data_root=..., **options)` and gets the
name it was opened by; `tests/fake_benchmark.py` is a complete small one
(`lpzero info tests/fake_benchmark.py:TinyGPT2Benchmark`).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

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

#: where `lpzero build lonas-mini` writes by default, and where "lonas-mini" looks after the data root
LONAS_MINI_DIR = "lonas_mini"
#: entry-point group through which other packages register benchmarks
ENTRY_POINT_GROUP = "lpzero.benchmarks"


class UnknownBenchmarkError(BenchmarkError, UnknownNameError):
    """A benchmark name that is neither built in, registered, nor a `module:Class`."""


#: benchmark classes by name. The built-ins are "module:Class" text: their model modules
#: import transformers (seconds), so they load only when a benchmark is opened.
BENCHMARKS: Registry = Registry("benchmark", group=ENTRY_POINT_GROUP, error=BenchmarkError,
                                unknown=UnknownBenchmarkError, check=subclass_check(Benchmark),
                                forms=("module:Class", "file.py:Class"))
BENCHMARKS.register("gpt2", "lpzero.benchmarks.lts:LTSBenchmark",
                    description="LiteTransformerSearch GPT-2 on WikiText-103, 200 architectures (lts_gpt2_wt103/)")
BENCHMARKS.register("flexibert", "lpzero.benchmarks.flexibert:FlexiBERTBenchmark",
                    description="FlexiBERT / NAS-Bench-BERT, 500 architectures, GLUE score (flexibert/)")
BENCHMARKS.register("lts", "lpzero.benchmarks.lts:LTSBenchmark", prefix=True,
                    description="any results directory in the Archai/LTS layout (lts:PATH)")
BENCHMARKS.register("lonas-mini", "lpzero.benchmarks.lonas:LoNASBenchmark",
                    description="LoNAS sub-networks of a tiny LLaMA super-network, held-out perplexity (built by "
                                "`lpzero build lonas-mini`)")
BENCHMARKS.register("lonas", "lpzero.benchmarks.lonas:LoNASBenchmark", prefix=True,
                    description="a built LoNAS directory, or a local LLaMA checkpoint with --adapter DIR (lonas:DIR)")


def _builtin_folder(head: str, argument: str | None, name: str, data: str | os.PathLike | None) -> tuple[Path, Path]:
    """(the built-in benchmark's folder, the data root it reads text and tokenizers from)."""
    if head in ("gpt2", "flexibert"):
        root = resolve_data_root(data)  # these live under the data root: it must exist
        return root / {"gpt2": "lts_gpt2_wt103", "flexibert": "flexibert"}[head], root
    root = resolve_data_root(data) if head == "lts" and data is not None else (
        Path(data) if data is not None else default_data_root())
    if head == "lonas-mini":
        return _lonas_path(name, root), root
    return Path(argument), root


def get_benchmark(name: str, data: str | os.PathLike | None = None, **options: Any) -> Benchmark:
    """The benchmark called `name` (see the module docstring).

    `data` is the data root (default: `LPZERO_DATA`, else `../shared/data`).
    `options` go to the benchmark's constructor (e.g. `hidden_size_compat=True`
    for FlexiBERT).
    """
    found = BENCHMARKS.lookup(name)
    cls = found.obj
    if found.source == "registered":
        head = name.partition(":")[0] if found.argument is not None else name
        if found.argument is not None:
            name = canonical_name(name)  # one benchmark, one name, however its path is spelled
        folder, root = _builtin_folder(head, found.argument and name.partition(":")[2], name, data)
        if head == "flexibert":
            return cls(folder, data_root=root, **options)
        return cls(folder, data_root=root, name=name, **options)
    root = Path(data) if data is not None else default_data_root()
    try:
        bench = cls(data_root=root, **options)
    except TypeError as e:
        raise BenchmarkError(f"benchmark {name!r}: cannot construct {cls.__name__}(data_root=..., "
                             f"**{options}): {e}") from None
    bench.name = name  # the name opens it again (a cache's settings reopen it in worker processes)
    return bench


def canonical_name(name: str) -> str:
    """A prefix benchmark's name with its path resolved and absolute (`lts:lts`, `lts:/abs/lts/` ->
    `lts:/abs/lts`), so a cache, a found proxy's benchmark and a resume see one benchmark; other
    names unchanged."""
    head, sep, argument = name.partition(":")
    if not sep or head not in ("lts", "lonas") or not argument:
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


def __getattr__(name: str) -> Any:
    # `build_lonas_mini` on first use: the build module imports scipy.stats (most of a second)
    if name == "build_lonas_mini":
        from .lonas.build import build_lonas_mini

        return build_lonas_mini
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _lonas_path(name: str, root: Path) -> Path:
    if name.startswith("lonas:"):
        return Path(name[len("lonas:"):])  # `get_benchmark` made it absolute
    for candidate in (root / LONAS_MINI_DIR, Path(LONAS_MINI_DIR)):
        if (candidate / "ground_truth.json").is_file():
            return candidate
    raise BenchmarkError(f"lonas-mini is not built (looked in {root / LONAS_MINI_DIR} and ./{LONAS_MINI_DIR}): "
                         f"run `lpzero build lonas-mini` (writes ./{LONAS_MINI_DIR}), or open a built copy as "
                         "lonas:DIR")


__all__ = [
    "Architecture",
    "BENCHMARKS",
    "Batch",
    "Benchmark",
    "BenchmarkError",
    "ENTRY_POINT_GROUP",
    "LONAS_MINI_DIR",
    "Site",
    "UnknownBenchmarkError",
    "WeightSite",
    "ZCSites",
    "build_lonas_mini",
    "canonical_name",
    "default_data_root",
    "folder_name",
    "get_benchmark",
    "open_benchmark",
    "resolve_data_root",
]
