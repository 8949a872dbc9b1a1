"""The result file of a search (`best.json`): what it holds, and reading it back.

`best.json` records the found proxy (tree, orientation, op table, formula, figures), the
split and fitness sample it was found on, the cache and search settings, and per-run
summaries. Reading the proxy back, and checking the file before anything uses it, is
`lpzero.proxies.found_proxy.FoundProxy.load` (a malformed or foreign file, or an op table
that cannot be imported, is one clear error, not a traceback later); `load_best` is its
record as a dict.
"""
from __future__ import annotations

from pathlib import Path

from lpzero.errors import ResultError, UnknownNameError
from lpzero.proxies.found_proxy import BEST_FILE, BEST_VERSION, PRIMITIVE_SET_VERSION, FoundProxy
from lpzero.search import best_baseline  # re-exported: it moved to the search, which uses it

SPLIT_PARTS = ("all", "search", "heldout")


def load_best(path: Path | str) -> dict:
    """A search's `best.json` (or its folder), checked as `FoundProxy.load` checks it, as a dict."""
    return FoundProxy.load(path).best


def _record(best: dict | FoundProxy) -> dict:
    return best.best if isinstance(best, FoundProxy) else best


def found_on(best: dict | FoundProxy) -> list[str]:
    """The benchmarks the proxy in `best` was found on: its `benchmark`, or every one of a search on
    several (`"benchmarks"`, the first being `benchmark`); empty if the file does not say."""
    best = _record(best)
    several = best.get("benchmarks")
    if isinstance(several, list) and all(isinstance(e, dict) and isinstance(e.get("benchmark"), str) for e in several):
        return [e["benchmark"] for e in several]
    return [best["benchmark"]] if isinstance(best.get("benchmark"), str) else []


def check_benchmark(best: dict | FoundProxy, benchmark: str, path: Path | str) -> None:
    """ResultError unless the proxy in `best` was found on `benchmark` (a proxy's sign and
    scale are those of the benchmark it was found on; a search on several: any of them)."""
    names = found_on(best)
    if names and benchmark not in names:
        raise ResultError(f"{path}: a proxy found on {' and '.join(repr(n) for n in names)}, not {benchmark!r} (its "
                          "split and orientation belong to that benchmark)")


def split_ids(best: dict | FoundProxy, part: str, ids: list[str], benchmark: str | None = None) -> list[str]:
    """The architectures of `ids` in one part ("all", "search", "heldout") of a run's split; of a search
    on several benchmarks, `benchmark`'s own split (default: the first benchmark's, best.json's `split`)."""
    best = _record(best)
    if part == "all":
        return ids
    if part not in SPLIT_PARTS:
        raise UnknownNameError("split part", part, SPLIT_PARTS)
    if benchmark is not None and benchmark in found_on(best)[1:]:
        best = best["benchmarks"][found_on(best).index(benchmark)]
    saved = best.get("split", {}).get(f"{part}_ids")
    if saved is None:
        raise ResultError("this best.json does not list its split's architectures (written by an older "
                          "lpzero); run `lpzero evolve` again")
    unknown = sorted(set(saved) - set(ids))
    if unknown:
        raise ResultError(f"the run's {part} part has architectures outside the selection: {', '.join(unknown[:5])}")
    saved = set(saved)
    return [a for a in ids if a in saved]


__all__ = ["BEST_FILE", "BEST_VERSION", "PRIMITIVE_SET_VERSION", "SPLIT_PARTS", "best_baseline", "check_benchmark",
           "found_on", "load_best", "split_ids"]
