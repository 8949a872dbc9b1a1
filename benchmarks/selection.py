"""Which benchmark, with which options, and which of its architectures: what every command opens first.

`BenchmarkRequest` is the part of a command's settings that names the benchmark
(`BENCH`, `--data`, `--hidden-size-compat`, `--adapter`, `--allow-param-mismatch`) and the architectures
(`--limit`, `--ids`); `open()` and `select_ids()` check all of it before any work.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from lpzero.errors import LPZeroError

from . import get_benchmark
from .base import Architecture, Benchmark, BenchmarkError, known_ids

#: seed of the `--limit N` subset, the same for every command, so `rank --limit N` meets `evolve --limit N`
LIMIT_SEED = 0


@dataclass(frozen=True)
class BenchmarkRequest:
    """A benchmark by name, its options, and the architectures a command works on."""

    name: str
    data: str | None = None
    #: FlexiBERT only: build every model at hidden size 256, as the original proxy code did
    hidden_size_compat: bool = False
    #: lonas:CHECKPOINT only: a local peft adapter directory of the super-network
    adapter: str | None = None
    #: lonas:CHECKPOINT only: a search-space JSON file (space.json's format)
    space_file: str | None = None
    #: LoNAS and hf: only: the dtype models load in (None or "auto": the checkpoint's own; hf: float32)
    dtype: str | None = None
    #: LoNAS and hf: only: a text file of the user's for the mini-batches (default: the table's, else WikiText-2)
    text: str | None = None
    #: only N architectures, a seeded subset (the same for every command)
    limit: int | None = None
    #: comma-separated architecture ids
    ids: str | None = None
    #: LTS only: go on when our GPT-2 builder does not reproduce the directory's own parameter counts
    allow_param_mismatch: bool = False

    def options(self) -> dict:
        """The options the benchmark's constructor takes (what a cache's key records)."""
        options: dict = {}
        if self.hidden_size_compat:
            if self.name != "flexibert":
                raise LPZeroError(self._not_here("--hidden-size-compat", "the flexibert benchmark"))
            options["hidden_size_compat"] = True
        if self.adapter is not None:
            if not self.name.startswith("lonas:"):
                raise LPZeroError(self._not_here("--adapter", "lonas:CHECKPOINT benchmarks"))
            options["adapter"] = self.adapter
        if self.space_file is not None:
            if not self.name.startswith("lonas:"):
                raise LPZeroError(self._not_here("--space-file", "lonas:CHECKPOINT benchmarks"))
            options["space"] = self.space_file
        checkpoints = self.name == "lonas-mini" or self.name.startswith(("lonas:", "tabular:lonas", "hf:"))
        for key in ("dtype", "text"):
            if getattr(self, key) is not None and not checkpoints:
                raise LPZeroError(self._not_here(f"--{key}", "LoNAS benchmarks (lonas-mini, lonas:DIR) and "
                                                               "hf:FILE tables"))
        if self.dtype is not None and self.dtype != "auto":  # "auto" is the default: one cache key for both
            options["dtype"] = self.dtype
        if self.text is not None:
            options["text"] = str(Path(self.text).resolve())  # the cache key must not depend on the folder
        return options

    def _not_here(self, option: str, where: str) -> str:
        """Why `option` is refused for this benchmark; it may be one of several (`evolve --benchmark A,B`),
        each given every option, so the message says so and how to give an option to one of them."""
        return (f"{option} applies to {where} only, not to {self.name}; with several benchmarks, each option goes "
                f"to every benchmark of the --benchmark list, so search with {option} on its benchmark alone")

    def open(self) -> Benchmark:
        """The benchmark, opened (a missing or malformed one is an error now)."""
        return self.checked(get_benchmark(self.name, self.data, **self.options()))

    def checked(self, bench: Benchmark) -> Benchmark:
        """`bench`, refused unless our builder reproduces its own parameter counts (an LTS directory of another
        model family) or `allow_param_mismatch` says to go on; not part of `options()`: it changes no result."""
        if not self.allow_param_mismatch:
            bench.check_family()
        return bench

    def selects(self) -> bool:
        """Whether `--limit` or `--ids` narrows the architectures."""
        return self.limit is not None or self.ids is not None

    def select_ids(self, bench: Benchmark) -> list[str]:
        """The architectures `--ids` or `--limit` select (all of them by default), each checked."""
        all_ids = bench.ids()
        if self.ids is not None:
            chosen = [i.strip() for i in self.ids.split(",") if i.strip()]
            if not chosen:
                raise LPZeroError(f"--ids {self.ids!r} names no architecture")
            listed = set(all_ids)
            unknown = [i for i in chosen if i not in listed]
            if unknown and all_ids:
                raise BenchmarkError(f"--ids: {bench.name}: unknown architecture id{'s' if len(unknown) > 1 else ''} "
                                     f"{', '.join(map(repr, unknown))} (known: {known_ids(all_ids)})")
            for i in unknown:  # a space that lists no ids (an open one) checks each itself
                bench.check_id(i)
            return list(dict.fromkeys(chosen))
        if self.limit is not None and self.limit < len(all_ids):
            keep = set(random.Random(LIMIT_SEED).sample(all_ids, self.limit))
            return [a for a in all_ids if a in keep]
        return all_ids


def measured(arch: Architecture) -> bool:
    """Whether an architecture has a ground truth (rank and evolve need it; an unmeasured LoNAS
    sub-network of a user's checkpoint has NaN)."""
    return arch.ground_truth is not None and arch.ground_truth == arch.ground_truth


def check_measured(bench: Benchmark, ids: list[str], needs: str) -> None:
    """BenchmarkError now, before any work, unless every architecture of `ids` has a ground truth (`needs`: who
    needs it, "rank", "a search"); a benchmark with none at all is told how to get one."""
    unmeasured = [a for a in ids if not measured(bench.architecture(a))]
    if not unmeasured:
        return
    if len(unmeasured) < len(ids):
        raise BenchmarkError(f"{bench.name}: {len(unmeasured)} of {len(ids)} architectures have no ground truth "
                             f"({', '.join(unmeasured[:3])}{', ...' if len(unmeasured) > 3 else ''}); {needs} needs "
                             "it for all (select the measured ones with --ids; nas needs none)")
    lonas = bench.name.startswith("lonas:") or bench.name == "lonas-mini"
    how = ("; give the checkpoint a ground_truth.json beside its config.json (each sub-network's choice and "
           "perplexity, as docs/lonas.md describes) or build lonas-mini with `lpzero build lonas-mini`"
           if lonas else "")
    raise BenchmarkError(f"{bench.name} has no ground truth (none of the {len(ids)} architectures is measured), which "
                         f"{needs} needs{how}; nas needs none")


def describe(bench: Benchmark) -> dict:
    """What `lpzero info` shows: every architecture with our builder's parameter counts, and a summary."""
    archs = bench.architectures()
    rows = [{"id": a.id, "ground_truth": a.ground_truth, "raw": a.raw, "params": bench.count_params(a.id),
             "reference_params": a.reference_params} for a in archs]
    known = [a.raw for a in archs if a.raw == a.raw]  # NaN: an architecture without ground truth
    totals = [r["params"]["total"] for r in rows]
    with_reference = [r for r in rows if r["reference_params"]]
    matching = sum(1 for r in with_reference if all(r["params"].get(k) == v for k, v in r["reference_params"].items()))
    return {
        "benchmark": bench.name, "architectures": rows, "raw_metric": bench.raw_metric,
        "ground_truth_range": (min(known), max(known)) if known else None,
        "params_range": (min(totals), max(totals)),
        "reference_match": (matching, len(rows)) if with_reference else None,
        "default_batch": (bench.default_batch_size, bench.default_seq_len),
        "paper_batch": (bench.paper_batch_size, bench.paper_seq_len),
    }
