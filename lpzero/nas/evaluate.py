"""Scoring one candidate: its costs (parameters, FLOPs, latency), constraints, and proxy score.

`evaluate_candidate` is the per-candidate task an executor runs (`lpzero.executors`), so
`--executor process|ray` spreads candidates over workers; it builds the model once and
returns a plain dict (it pickles, and is stored as is in the search's checkpoint). Costs
are checked against the limits cheapest first (parameters need no model), and a
candidate over a limit is not scored.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.benchmark import Timer
from torch.utils.flop_counter import FlopCounterMode

from lpzero.benchmarks import Batch, Benchmark
from lpzero.errors import UnknownNameError
from lpzero.executors import torch_threads
from lpzero.proxies import HAND_DESIGNED, Proxy, ProxyContext, score_proxies
from lpzero.proxies import FoundProxy

from .space import NASError, SearchSpace

log = logging.getLogger("lpzero")

#: the costs a search can minimise or limit, in the order they are checked (cheapest first)
COSTS = ("params", "flops", "latency")
#: how each cost is written in tables
COST_LABELS = {"params": "parameters", "flops": "FLOPs (one forward pass)", "latency": "latency (ms)"}


def proxy_spec(text: str) -> Proxy:
    """`--proxy`: a hand-designed proxy's name (`-name`: negated), or a found `best.json` (or its folder)
    as a `FoundProxy` named `found:<folder>`, read with the op table it records.

    A registered name always means the registered proxy, so what `--proxy grad_norm` does never depends on
    the working directory; a file or folder of that name is given as a path (`./grad_norm`), and when both
    exist a warning says which was read."""
    path = Path(text)
    negated = text.startswith("-")
    name = text[1:] if negated else text
    if name in HAND_DESIGNED:
        if path.exists():
            log.warning("--proxy %s is the hand-designed proxy; the %s %s here is read only as a path (--proxy ./%s)",
                        text, "folder" if path.is_dir() else "file", text, text)
        return HAND_DESIGNED.get(name).oriented(-1 if negated else 1)
    if path.suffix == ".json" or path.is_dir() or path.is_file():
        return FoundProxy.load(path)
    if ":" not in name:
        raise UnknownNameError("proxy (a best.json path or a baseline)", text, HAND_DESIGNED.names())
    return HAND_DESIGNED.get(name).oriented(-1 if negated else 1)


@dataclass(frozen=True)
class EvalSettings:
    """How candidates are scored and costed."""

    batch_size: int
    seq_len: int
    batch_seed: int = 0
    model_seed: int = 0
    device: str = "cpu"
    #: the costs the search minimises (a subset of COSTS, in this order)
    costs: tuple[str, ...] = ("params",)
    #: cost -> upper limit (a candidate above it is infeasible and not scored)
    limits: dict = field(default_factory=dict)
    #: FLOPs and latency are those of one forward pass (the benchmark's `loss`) on one sequence of this length
    cost_seq_len: int = 192
    latency_repeats: int = 3
    #: False: the score is not computed here (it comes from a cache; only costs are)
    score: bool = True

    def __post_init__(self) -> None:
        for name in (*self.costs, *self.limits):
            if name not in COSTS:
                raise UnknownNameError("cost", name, COSTS)
        if not self.costs:
            raise NASError("a search needs at least one cost (params, flops or latency)")

    def needed(self) -> list[str]:
        """The costs to compute: those minimised and those limited, cheapest first."""
        return [c for c in COSTS if c in self.costs or c in self.limits]

    def record(self) -> dict:
        return {"batch_size": self.batch_size, "seq_len": self.seq_len, "batch_seed": self.batch_seed,
                "model_seed": self.model_seed, "device": self.device, "costs": list(self.costs),
                "limits": dict(self.limits), "cost_seq_len": self.cost_seq_len,
                "latency_repeats": self.latency_repeats}


def count_flops(bench: Benchmark, model: nn.Module, batch: Batch) -> int:
    """FLOPs of one forward pass of the benchmark's objective, counted by torch's FlopCounterMode."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        bench.loss(model, batch)
    return int(counter.get_total_flops())


def measure_latency(bench: Benchmark, model: nn.Module, batch: Batch, repeats: int = 3) -> float:
    """Mean milliseconds of one forward pass of the benchmark's objective over `repeats` passes.

    Timed by `torch.utils.benchmark.Timer`, which warms up first and synchronises CUDA.
    """
    timer = Timer("loss(model, batch)", globals={"loss": bench.loss, "model": model, "batch": batch},
                  num_threads=torch.get_num_threads())
    with torch.no_grad():
        return 1000.0 * timer.timeit(max(1, repeats)).mean


def violation(costs: dict, limits: dict) -> float:
    """How far over its limits a candidate is: the sum of relative excesses (0: feasible)."""
    total = 0.0
    for name, limit in limits.items():
        value = costs.get(name)
        if value is not None and value > limit:
            total += (value - limit) / max(abs(limit), 1e-12)
    return total


def evaluate_candidate(key: str, space: SearchSpace, proxy: Proxy | None, settings: EvalSettings) -> dict:
    """One candidate's costs and proxy score, as a dict, computed on one torch thread.

    One thread wherever it runs (a process pool's workers run one), so a run's scores do not
    depend on the executor, as the cache's do not depend on `--jobs`.

    Keys: `score` (oriented, higher = better; None when not computed or not finite), each
    needed cost (`params`, `flops`, `latency`), `feasible`, `violation`, `error` (why the
    score is missing) and `seconds` per stage: `params`, `build`, `flops`, `latency`, `pass`
    (the forward, and backward if the proxy needs gradients, that extracts the inputs),
    `proxy` (the proxy's arithmetic). `proxy` is any `Proxy` (a `FoundProxy`, a hand-designed
    one), scored by `lpzero.proxies.score_proxies` on the candidate's model.
    """
    with torch_threads():
        return _evaluate(key, space, proxy, settings)


def _evaluate(key: str, space: SearchSpace, proxy: Proxy | None, settings: EvalSettings) -> dict:
    config = space.config(key)
    seconds: dict[str, float] = {}
    out: dict[str, Any] = {"score": None, "feasible": True, "violation": 0.0, "error": None, "seconds": seconds}
    needed = settings.needed()
    t = time.perf_counter()
    out["params"] = int(space.count_params(config)["total"])
    seconds["params"] = time.perf_counter() - t
    if _over(out, settings):
        return out
    need_model = settings.score or "flops" in needed or "latency" in needed
    if not need_model:
        return out
    bench = space.proxy_benchmark()
    t = time.perf_counter()
    model = space.build_model(config, settings.model_seed, settings.device)
    seconds["build"] = time.perf_counter() - t
    if "flops" in needed or "latency" in needed:
        one = bench.make_batch(settings.batch_seed, 1, settings.cost_seq_len).to(settings.device)
        if "flops" in needed:
            t = time.perf_counter()
            out["flops"] = count_flops(bench, model, one)
            seconds["flops"] = time.perf_counter() - t
            if _over(out, settings):
                return out
        if "latency" in needed:
            t = time.perf_counter()
            out["latency"] = measure_latency(bench, model, one, settings.latency_repeats)
            seconds["latency"] = time.perf_counter() - t
            if _over(out, settings):
                return out
    if settings.score and proxy is not None:
        batch = bench.make_batch(settings.batch_seed, settings.batch_size, settings.seq_len).to(settings.device)
        score = _score(bench, key, model, batch, proxy, settings, seconds)
        if math.isfinite(score):
            out["score"] = score
        else:
            out["error"] = f"non-finite score {score}"
    return out


def _over(out: dict, settings: EvalSettings) -> bool:
    out["violation"] = violation(out, settings.limits)
    out["feasible"] = out["violation"] == 0
    return not out["feasible"]


def _score(bench: Benchmark, key: str, model: nn.Module, batch: Batch, proxy: Proxy, settings: EvalSettings,
           seconds: dict) -> float:
    """`proxy`'s score (oriented) of the candidate whose model is built already; its stages into `seconds`.

    `pass`: the shared work the proxy read (the forward, and backward if it needs gradients,
    that records or extracts its inputs); `proxy`: the rest (its arithmetic, and the passes
    a proxy runs by itself, e.g. grasp's second-order one).
    """
    ctx = ProxyContext(bench, key, settings.model_seed, batch, settings.device)
    ctx.shared("model", lambda: model)  # the model built above, not a second one
    result = score_proxies([proxy], ctx, strict=True)[proxy.name]
    seconds["pass"] = result.pass_seconds
    seconds["proxy"] = result.seconds - result.pass_seconds
    return result.value