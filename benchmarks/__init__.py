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
import importlib
import json
import importlib.util
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from lpzero.errors import UnknownNameError

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

#: built-in name -> one-line description
BENCHMARKS = {
    "gpt2": "LiteTransformerSearch GPT-2 on WikiText-103, 200 architectures (lts_gpt2_wt103/)",
    "flexibert": "FlexiBERT / NAS-Bench-BERT, 500 architectures, GLUE score (flexibert/)",
    "lts:PATH": "any results directory in the Archai/LTS layout",
    "lonas-mini": "LoNAS sub-networks of a tiny LLaMA super-network, held-out perplexity (lonas_mini/, built by "
                  "`lpzero build lonas-mini`)",
    "lonas:PATH": "a built LoNAS directory, or a local LLaMA checkpoint (with --adapter DIR)",
}
#: where `lpzero build lonas-mini` writes by default, and where "lonas-mini" looks after the data root
LONAS_MINI_DIR = "lonas_mini"
#: entry-point group through which other packages register benchmarks
ENTRY_POINT_GROUP = "lpzero.benchmarks"


class UnknownBenchmarkError(BenchmarkError, UnknownNameError):
    """A benchmark name that is neither built in, registered, nor a `module:Class`."""


def get_benchmark(name: str, data: str | os.PathLike | None = None, **options: Any) -> Benchmark:
    """The benchmark called `name` (see the module docstring).

    `data` is the data root (default: `LPZERO_DATA`, else `../shared/data`).
    `options` go to the benchmark's constructor (e.g. `hidden_size_compat=True`
    for FlexiBERT).
    """
    # The model modules import transformers (seconds), so they load only when asked for.
    if name.startswith("lts:"):
        from .lts import LTSBenchmark

        path = name[len("lts:"):]
        root = resolve_data_root(data) if data is not None else default_data_root()
        return LTSBenchmark(path, data_root=root, name=name, **options)
    if name == "gpt2":
        from .lts import LTSBenchmark

        root = resolve_data_root(data)
        return LTSBenchmark(root / "lts_gpt2_wt103", data_root=root, name="gpt2", **options)
    if name == "lonas-mini" or name.startswith("lonas:"):
        from .lonas import LoNASBenchmark

        root = Path(data) if data is not None else default_data_root()
        return LoNASBenchmark(_lonas_path(name, root), data_root=root, name=name, **options)
    if name == "flexibert":
        from .flexibert import FlexiBERTBenchmark

        root = resolve_data_root(data)
        return FlexiBERTBenchmark(root / "flexibert", data_root=root, **options)
    cls = _registered(name) or (_user_class(name) if ":" in name else None)
    if cls is None:
        known = list(BENCHMARKS) + sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
        raise UnknownBenchmarkError("benchmark", name, known + ["module:Class", "file.py:Class"])
    root = Path(data) if data is not None else default_data_root()
    try:
        bench = cls(data_root=root, **options)
    except TypeError as e:
        raise BenchmarkError(f"benchmark {name!r}: cannot construct {cls.__name__}(data_root=..., "
                             f"**{options}): {e}") from None
    bench.name = name  # the name opens it again (a cache's settings reopen it in worker processes)
    return bench


#: benchmarks opened by `open_benchmark` in this process
_OPENED: dict[tuple, Benchmark] = {}


def open_benchmark(name: str, data: str | os.PathLike | None = None, **options: Any) -> Benchmark:
    """`get_benchmark(name, data, **options)`, opened once per process.

    Workers get settings or spaces (not benchmarks) with each task; reading a benchmark's
    data (or loading a super-network) once per process instead of once per task is what
    this is for.
    """
    key = (name, None if data is None else str(data), json.dumps(options, sort_keys=True))
    if key not in _OPENED:
        _OPENED[key] = get_benchmark(name, data, **options)
    return _OPENED[key]


def _lonas_path(name: str, root: Path) -> Path:
    if name.startswith("lonas:"):
        return Path(name[len("lonas:"):])
    for candidate in (root / LONAS_MINI_DIR, Path(LONAS_MINI_DIR)):
        if (candidate / "ground_truth.json").is_file():
            return candidate
    raise BenchmarkError(f"lonas-mini is not built (looked in {root / LONAS_MINI_DIR} and ./{LONAS_MINI_DIR}): "
                         f"run `lpzero build lonas-mini` (writes ./{LONAS_MINI_DIR}), or open a built copy as "
                         "lonas:DIR")


def _registered(name: str) -> type[Benchmark] | None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            try:
                return _check_class(ep.load(), f"entry point {name!r}")
            except ImportError as e:
                raise BenchmarkError(f"entry point {name!r} ({ep.value}) cannot be imported: {e}") from None
    return None


def _user_class(spec: str) -> type[Benchmark]:
    """The class named by "package.module:Class" or "path/to/file.py:Class"."""
    where, _, attr = spec.rpartition(":")
    if where.endswith(".py"):
        path = Path(where).resolve()
        if not path.is_file():
            raise BenchmarkError(f"{path}: file not found (benchmark {spec!r})")
        # one module per file, however often the benchmark is opened
        name = f"lpzero_user_benchmark_{hashlib.sha1(str(path).encode()).hexdigest()[:12]}"
        module = sys.modules.get(name)
        if module is None:
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)
            try:
                module_spec.loader.exec_module(module)
            except ImportError as e:
                raise BenchmarkError(f"{path}: cannot be imported: {e}") from None
            sys.modules[name] = module
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as e:
            raise BenchmarkError(f"benchmark {spec!r}: module {where!r} cannot be imported: {e}") from None
    if not hasattr(module, attr):
        raise BenchmarkError(f"benchmark {spec!r}: {where} has no attribute {attr!r}")
    return _check_class(getattr(module, attr), f"benchmark {spec!r}")


def _check_class(obj: object, what: str) -> type[Benchmark]:
    if not (isinstance(obj, type) and issubclass(obj, Benchmark)):
        raise BenchmarkError(f"{what} is not a subclass of lpzero.benchmarks.Benchmark")
    return obj


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
    "default_data_root",
    "get_benchmark",
    "open_benchmark",
    "resolve_data_root",
]
