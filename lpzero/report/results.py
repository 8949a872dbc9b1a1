"""The result file of a search (`best.json`): what it holds, and reading it back.

`best.json` records the found proxy (tree, orientation, formula, figures), the
split and fitness sample it was found on, the cache and search settings, and per-run
summaries. `load_best` checks a file before anything uses it, so a malformed or
foreign file is one clear error, not a traceback later.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from lpzero.cache import InputCache
from lpzero.errors import ResultError, UnknownNameError
from lpzero.primitives import PrimitiveError, default_pset, parse_tree
from lpzero.search import correlation

#: identifies the primitive set a saved tree refers to; bump when op semantics change
PRIMITIVE_SET_VERSION = "1"
#: the layout of best.json; bump when a key changes meaning
BEST_VERSION = 1
BEST_FILE = "best.json"
SPLIT_PARTS = ("all", "search", "heldout")


def best_baseline(cache: InputCache, ids: Sequence[str], truth: np.ndarray) -> dict | None:
    """The cached hand-designed proxy with the highest |ρ| on `ids`."""
    infos = [cache.info(a)["baselines"] for a in ids]
    names = set.intersection(*(set(i) for i in infos)) if infos else set()
    best = None
    for name in sorted(names):
        m = correlation(np.array([i[name] for i in infos]), truth)
        if m["spearman"] is not None and (best is None or abs(m["spearman"]) > abs(best["spearman"])):
            best = {"proxy": name, **m}
    return best


def load_best(path: Path) -> dict:
    """A search's `best.json`, checked: ResultError names what is wrong with it."""
    path = Path(path)
    if path.is_dir():
        path = path / BEST_FILE
    if not path.is_file():
        raise ResultError(f"{path}: file not found")
    try:
        best = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ResultError(f"{path}: malformed JSON (line {e.lineno}): {e.msg}") from None
    except UnicodeDecodeError:
        raise ResultError(f"{path}: not a text file") from None
    if not isinstance(best, dict):
        raise ResultError(f"{path}: not an lpzero best.json (a JSON {type(best).__name__}, not an object)")
    for key in ("tree", "primitive_set_version"):
        if key not in best:
            raise ResultError(f"{path}: not an lpzero best.json (no {key!r})")
    if best["primitive_set_version"] != PRIMITIVE_SET_VERSION:
        raise ResultError(f"{path}: written for primitive set version {best['primitive_set_version']}, "
                          f"this lpzero has {PRIMITIVE_SET_VERSION}")
    version = best.get("lpzero_best_version", BEST_VERSION)
    if version != BEST_VERSION:
        raise ResultError(f"{path}: best.json layout version {version}, this lpzero reads {BEST_VERSION}")
    if best.get("orientation", 1) not in (1, -1):
        raise ResultError(f"{path}: orientation must be 1 or -1, not {best['orientation']!r}")
    try:
        parse_tree(best["tree"], default_pset())
    except PrimitiveError as e:
        raise ResultError(f"{path}: {e}") from None
    return best


def check_benchmark(best: dict, benchmark: str, path: Path | str) -> None:
    """ResultError unless the proxy in `best` was found on `benchmark` (a proxy's sign and
    scale are those of the benchmark it was found on)."""
    found_on = best.get("benchmark")
    if found_on is not None and found_on != benchmark:
        raise ResultError(f"{path}: a proxy found on {found_on!r}, not {benchmark!r} (its split and orientation "
                          "belong to that benchmark)")


def split_ids(best: dict, part: str, ids: list[str]) -> list[str]:
    """The architectures of `ids` in one part ("all", "search", "heldout") of a run's split."""
    if part == "all":
        return ids
    if part not in SPLIT_PARTS:
        raise UnknownNameError("split part", part, SPLIT_PARTS)
    saved = best.get("split", {}).get(f"{part}_ids")
    if saved is None:
        raise ResultError("this best.json does not list its split's architectures (written by an older "
                          "lpzero); run `lpzero evolve` again")
    unknown = sorted(set(saved) - set(ids))
    if unknown:
        raise ResultError(f"the run's {part} part has architectures outside the selection: {', '.join(unknown[:5])}")
    saved = set(saved)
    return [a for a in ids if a in saved]
